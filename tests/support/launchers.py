"""The two multi-process launchers the parallel tests start itdd under, and a run of itdd in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


# accelerate's `--cpu` starts ONE process unless MPI is set up; `--multi_gpu` starts them through
# torchrun, and on a machine without CUDA each process then runs on the CPU over gloo.
LAUNCHERS = {  # each run on a fresh free port, so runs never collide on a lingering rendezvous
    "torchrun": lambda: [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                         "-m", "itdd_cli"],
    "accelerate": lambda: [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2",
                           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--multi_gpu",
                           "--main_process_port", _free_port(), "-m", "itdd_cli"],
}  # fmt: skip


def run_launched(prefix: list[str], args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """`prefix` (a launcher, or `python -m itdd_cli`) with `args`, run in `cwd` with this checkout importable."""
    env = os.environ | {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([*prefix, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)
