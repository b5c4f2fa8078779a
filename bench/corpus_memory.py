"""Peak memory of corpus studies against corpus size: 100 vs 10,000 documents must stay within 1.2×.

    python bench/corpus_memory.py                   # 100 vs 10,000 documents in each scenario
    python bench/corpus_memory.py --large 2000      # a quicker check

Scenarios, each a fresh `itdd nll` process reporting its own peak resident memory (ru_maxrss):
plain text read with `--lines`, CSV, long documents under `--long rolling` (the bundled demo
model, whose window is 64 tokens, so every document needs several windows), and two checkpoints
of a run directory (`-m run/` holding checkpoint-1 and checkpoint-2), 2 draws per window.
"""

from __future__ import annotations

import argparse
import random
import shutil
import string
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.peak import itdd_peak_kib  # noqa: E402
from tests.support.family_checkpoints import write_llada  # noqa: E402


def _words(rng: random.Random, count: int) -> str:
    return " ".join("".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(2, 7))) for _ in range(count))


def write_inputs(root: Path, count: int) -> dict[str, Path]:
    rng = random.Random(count)
    short = [_words(rng, rng.randint(1, 3)) for _ in range(count)]
    long = [_words(rng, rng.randint(30, 45)) for _ in range(count)]  # ≈ 150–250 characters
    paths = {"lines": root / f"{count}.txt", "csv": root / f"{count}.csv", "rolling": root / f"{count}.long.txt"}
    paths["lines"].write_text("\n".join(short) + "\n")
    paths["csv"].write_text("id,text\n" + "".join(f"r{i},{text}\n" for i, text in enumerate(short)))
    paths["rolling"].write_text("\n".join(long) + "\n")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--large", type=int, default=10_000)
    parser.add_argument("--scenarios", default="lines,csv,rolling,checkpoints")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        model = write_llada(root / "run" / "checkpoint-1")
        shutil.copytree(model, root / "run" / "checkpoint-2")
        inputs = {count: write_inputs(root, count) for count in (args.small, args.large)}
        scenarios = {
            "lines": lambda p: [p["lines"], "--lines", "-m", model],
            "csv": lambda p: [p["csv"], "-m", model],
            "rolling": lambda p: [p["rolling"], "--lines", "-m", "demo", "--long", "rolling", "--context", "16"],
            "checkpoints": lambda p: [p["lines"], "--lines", "-m", root / "run"],
        }
        for name in args.scenarios.split(","):
            peaks = {}
            for count in (args.small, args.large):
                out = root / "out.jsonl"
                command = ["nll", *map(str, scenarios[name](inputs[count])), "-n", "2", "-q", "-o", str(out),
                           "--overwrite"]  # fmt: skip
                peaks[count] = itdd_peak_kib(command)
                rows = sum(1 for _ in out.open())
                expected = count * (2 if name == "checkpoints" else 1)
                assert rows == expected, f"{name}: {rows} rows for {expected}"
            (small, t_small), (large, t_large) = peaks[args.small], peaks[args.large]
            print(f"{name:>11}: {args.small} docs {small / 1024:7.1f} MiB ({t_small:5.1f} s) · {args.large} docs "
                  f"{large / 1024:7.1f} MiB ({t_large:6.1f} s) · ratio {large / small:.3f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
