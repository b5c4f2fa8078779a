"""Peak memory against input size: scoring 1k and 100k short records must use the same memory.

    python bench/memory.py                    # 1,000 vs 100,000 records, 2 draws each
    python bench/memory.py --large 20000      # a quicker check

Each run is a fresh `itdd nll` process on a tiny LLaDA-format model; it reports its own peak
resident memory (ru_maxrss) on exit. The input streams through a bounded look-ahead window, so
the two peaks should be equal up to allocator noise.
"""

from __future__ import annotations

import argparse
import json
import random
import string
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.peak import itdd_peak_kib  # noqa: E402
from tests.support.family_checkpoints import write_llada  # noqa: E402


def write_records(path: Path, count: int) -> None:
    rng = random.Random(0)
    with path.open("w") as file:
        for _ in range(count):
            text = "".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(4, 12)))
            file.write(json.dumps({"text": text}) + "\n")


def peak_kib(model: Path, records: Path, output: Path) -> tuple[int, float]:
    return itdd_peak_kib(["nll", records, "-m", model, "-n", "2", "-q", "-o", output, "--overwrite"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        model = write_llada(root / "model")
        results = {}
        for count in (args.small, args.large):
            write_records(root / f"{count}.jsonl", count)
            results[count] = peak_kib(model, root / f"{count}.jsonl", root / f"{count}.out.jsonl")
            lines = sum(1 for _ in (root / f"{count}.out.jsonl").open())
            assert lines == count, f"{lines} rows for {count} records"
    for count, (kib, seconds) in results.items():
        print(f"{count:>8} records: peak RSS {kib / 1024:8.1f} MiB   ({seconds:.1f} s)")
    ratio = results[args.large][0] / results[args.small][0]
    print(f"peak memory ratio large/small: {ratio:.3f} for {args.large / args.small:.0f}x the input")


if __name__ == "__main__":
    main()
