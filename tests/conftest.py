from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

# Before anything imports huggingface_hub, which reads these once: no test may reach the network
# (a hub lookup would otherwise retry for minutes where the network is closed).
os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")

import pytest  # noqa: E402
import torch  # noqa: E402

from itdd_cli.oracle import OracleDistribution, write_checkpoint  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):  # `pytest -n 2`: one thread per worker, not two workers × all cores
    torch.set_num_threads(1)

ORACLE_SEED = 7


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach the network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def distribution() -> OracleDistribution:
    return OracleDistribution.random(ORACLE_SEED)


@pytest.fixture(scope="session")
def oracle_dir(tmp_path_factory: pytest.TempPathFactory, distribution: OracleDistribution) -> Path:
    """An exact-conditional checkpoint in masked-LM format (custom class via auto_map)."""
    return write_checkpoint(tmp_path_factory.mktemp("oracle"), distribution)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def read_jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def invoke(args, stdin=None, env=None):
    """The CLI in this process, as a user would call it (every argument as a string)."""
    from typer.testing import CliRunner

    from itdd_cli.cli.app import app

    return CliRunner().invoke(app, [str(a) for a in args], input=stdin, env=env)


@pytest.fixture
def base(oracle_dir):
    """Options that score with the oracle checkpoint, cheaply."""
    return ["-m", oracle_dir, "--trust-remote-code", "-n", "8"]


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
