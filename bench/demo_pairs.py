"""The bundled demo model on its held-out pairs: how often it prefers the original sentence.

    python bench/demo_pairs.py            # the README's command: itdd ratio examples/shuffled-pairs.jsonl -m demo -n 64

Runs exactly that command (the CLI, default estimator and seed) and prints how many of the pairs
prefer `chosen` (the original) over its word-shuffled copy, then every pair that does not, with
its log-ratio and standard error. A few minutes on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="examples/shuffled-pairs.jsonl")
    parser.add_argument("--model", default="demo")
    parser.add_argument("--samples", "-n", type=int, default=64)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "pairs.jsonl"
        command = [sys.executable, "-m", "itdd_cli", "ratio", args.data, "-m", args.model, "-n", str(args.samples),
                   "-q", "-o", str(out)]  # fmt: skip
        subprocess.run(command, cwd=ROOT, check=True)
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines() if line.strip()]
    chosen = sum(row["prefers"] == "chosen" for row in rows)
    print(f"itdd ratio {args.data} -m {args.model} -n {args.samples}: prefers the original in {chosen} of "
          f"{len(rows)} pairs")  # fmt: skip
    for row in rows:
        if row["prefers"] != "chosen":
            print(f"  {row['id']}: log_ratio {row['log_ratio']:+.2f} ± {row['log_ratio_se']:.2f}")


if __name__ == "__main__":
    main()
