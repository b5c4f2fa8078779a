"""bench/gpu.py runs end to end: on the CPU with a tiny geometry (its --smoke mode)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_bench_runs_on_the_cpu_with_a_tiny_geometry():
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), "--smoke"], capture_output=True, text=True,
                          timeout=600, cwd=ROOT)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for kind in ("short", "long"):
        assert f"## {kind} records" in out
    starts = ("engine cold", "engine warm", "reference ", "ceiling ", "engine/ceiling: cold", "engine/reference: cold")
    for start in starts:
        assert sum(line.startswith(start) for line in out.splitlines()) == 2, start
    assert "attention kernel chosen by the engine: cpu default" in out
    gaps = [float(line.split(": ")[1].split()[0]) for line in out.splitlines() if line.startswith("largest")]
    assert len(gaps) == 2 and max(gaps) < 0.05  # the engine and the published loop agree (same draws, bf16)
