"""Run a bench in this tree and in another revision, alternately, and compare one timed line.

    python bench/against.py main bench/throughput.py            # the CPU throughput bench
    python bench/against.py main bench/throughput.py --records 6 --samples 64

The other revision is read with `git archive` into a temporary directory (nothing in the
repository changes) and the bench runs there with that revision's code. Each tree runs
--repeat times (alternating, so drift on a shared machine hits both alike); the best time of
the line named by --line is kept. Printed: both times and the ratio theirs/ours (≥ 1: this
tree is at least as fast).
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed_line(tree: Path, bench: str, args: list[str], line: str) -> tuple[float, str]:
    done = subprocess.run([sys.executable, str(tree / bench), *args], capture_output=True, text=True, cwd=tree)
    if done.returncode:
        raise SystemExit(f"{bench} failed in {tree}:\n{done.stderr[-2000:]}")
    match = re.search(rf"^{re.escape(line)}\s+([0-9.]+) s", done.stdout, re.MULTILINE)
    if match is None:
        raise SystemExit(f"no line '{line} … s' in the output of {bench} in {tree}:\n{done.stdout}")
    return float(match.group(1)), done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("revision")
    parser.add_argument("bench", help="the bench script, relative to the repository root")
    parser.add_argument("--line", default="engine", help="the output line whose seconds are compared")
    parser.add_argument("--repeat", type=int, default=2)
    args, rest = parser.parse_known_args()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", args.revision], capture_output=True,
                             check=True).stdout  # fmt: skip
    best = {"theirs": float("inf"), "ours": float("inf")}
    with tempfile.TemporaryDirectory() as directory:
        tarfile.open(fileobj=io.BytesIO(archive)).extractall(directory, filter="data")
        trees = {"theirs": Path(directory), "ours": ROOT}
        for _ in range(args.repeat):
            for side, tree in trees.items():
                seconds, output = timed_line(tree, args.bench, rest, args.line)
                best[side] = min(best[side], seconds)
                print(f"{side}: {args.line} {seconds:.2f} s", file=sys.stderr, flush=True)
    print(output.rstrip())  # this tree's last output, for the context of the numbers
    command = " ".join([args.bench, *rest])
    print(f"\n{args.line} ({command}), best of {args.repeat}: {args.revision} {best['theirs']:.2f} s, "
          f"this tree {best['ours']:.2f} s, ratio {best['theirs'] / best['ours']:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
