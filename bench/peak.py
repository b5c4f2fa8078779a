"""Peak resident memory of one `itdd` run, measured in a fresh process (shared by the memory benches)."""

from __future__ import annotations

import subprocess
import sys
import time

RUN_AND_REPORT = """
import resource, sys
from itdd_cli.cli.app import app
try:
    app(sys.argv[1:])
except SystemExit as exit:
    if exit.code:
        raise
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def itdd_peak_kib(args: list[str]) -> tuple[int, float]:
    """(peak RSS in KiB, wall seconds) of `itdd ARGS` run in its own process."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", RUN_AND_REPORT, *map(str, args)], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"itdd {' '.join(map(str, args))} failed:\n{done.stderr[-2000:]}")
    return int(done.stderr.strip().splitlines()[-1]), time.perf_counter() - start
