"""Coupled against independent draws for ratio pairs: the variance of log_ratio over seeds.

    python bench/coupling.py                                  # both parts, 40 seeds × -n 32 (minutes on 2 cores)
    python bench/coupling.py --part oracle --seeds 200 --samples 64

For each pair, log_ratio is estimated with --seeds seeds at the same passes per side, coupled
(the default) and with --independent; the "gain" is var(independent) / var(coupled) and the
table prints its median over pairs and every pair's value. `--rank` adds the coupling itdd used
before issue #13 (key i to position i of every side, the pilot shared the same way), measured
by swapping the alignment for it. Every number is measured in this run; with 40 seeds a single
pair's variance ratio is only good to about ±45 % (95 %), so read the medians.

Cases: `demo` the bundled demo model on the shuffled pairs of examples/shuffled-pairs.jsonl
whose chosen text is 16–25 tokens (every word of the rejected side is a word of the chosen
side, in another order); `oracle` the exact-conditional oracle (seed 0) on
examples/oracle-pairs.jsonl, whose true_log_ratio is exact (the bias column checks it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from itdd_cli.bundled import bundled_path  # noqa: E402
from itdd_cli.estimators import Estimator  # noqa: E402
from itdd_cli.io.records import Fields  # noqa: E402
from itdd_cli.models import LoadOptions, load_model  # noqa: E402
from itdd_cli.oracle import OracleDistribution, write_checkpoint  # noqa: E402
from itdd_cli.results.rows import SPECS, Command  # noqa: E402
from itdd_cli.scoring.draws import run_rounds  # noqa: E402
from itdd_cli.scoring.engine import Engine  # noqa: E402
from itdd_cli.scoring.runner import Settings, prepare  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def by_rank(sides):
    """The coupling before issue #13: key column i for position i of every side."""
    return [torch.arange(len(tokens)) for tokens in sides], max(len(tokens) for tokens in sides)


def log_ratios(model, records, estimator, samples, seeds, independent):
    """(pairs, seeds) log_ratio values and SEs; one engine run batches every seed."""
    prepared = [
        prepare(model, record, Settings(estimator=estimator, samples=samples, seed=seed, independent=independent))
        for record in records
        for seed in range(seeds)
    ]
    list(run_rounds(Engine(model), iter(prepared), lambda item: item.draws, adaptive=False))
    found = [item.draws.difference() for item in prepared]
    value = torch.tensor([e.value for e in found], dtype=torch.float64).view(len(records), seeds)
    se = torch.tensor([e.se for e in found], dtype=torch.float64).view(len(records), seeds)
    return value, se


def compare(model, records, args, truth=None):
    for estimator in args.estimators:
        started = time.perf_counter()
        free, _ = log_ratios(model, records, estimator, args.samples, args.seeds, True)
        coupled, se = log_ratios(model, records, estimator, args.samples, args.seeds, False)
        rows = [("coupled (identity alignment)", coupled)]
        if args.rank:
            with mock.patch("itdd_cli.scoring.draws.key_columns", by_rank):
                rows.append(("coupled by rank (before #13)", log_ratios(model, records, estimator, args.samples,
                                                                       args.seeds, False)[0]))  # fmt: skip
        print(f"\n{estimator.value}: var(independent) / var(coupled) of log_ratio, {args.seeds} seeds, "
              f"-n {args.samples}, {len(records)} pairs")  # fmt: skip
        for name, values in rows:
            gains = (free.var(1) / values.var(1)).tolist()
            print(f"  {name:<30} median {statistics.median(gains):5.2f}×   per pair "
                  + " ".join(f"{g:.2f}" for g in gains))  # fmt: skip
        calibration = coupled.std(1) / se.mean(1)
        print(f"  coupled SE calibration (spread / mean SE) per pair {' '.join(f'{c:.2f}' for c in calibration)}")
        if truth is not None:
            z = (coupled.mean(1) - truth) / (coupled.std(1) / args.seeds**0.5)
            print(f"  coupled bias / SE of the mean per pair {' '.join(f'{v:+.2f}' for v in z.tolist())}")
        print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)


def pair_records(objects):
    fields = ("prompt", "chosen", "rejected")
    return [SPECS[Command.ratio].parse({k: o[k] for k in fields if k in o}, i + 1, Fields()) for i, o in
            enumerate(objects)]  # fmt: skip


def part_demo(args):
    model = load_model(LoadOptions(str(bundled_path("demo"))))
    lines = [json.loads(line) for line in (ROOT / "examples" / "shuffled-pairs.jsonl").read_text().splitlines()]
    pairs = [p for p in lines if 16 <= len(model.encode(p["chosen"])) <= 25][: args.pairs]
    print(f"\n# demo: shuffled pairs ({', '.join(p['id'] for p in pairs)})")
    compare(model, pair_records(pairs), args)


def part_oracle(args):
    lines = [json.loads(line) for line in (ROOT / "examples" / "oracle-pairs.jsonl").read_text().splitlines()]
    truth = torch.tensor([p["true_log_ratio"] for p in lines], dtype=torch.float64)
    with tempfile.TemporaryDirectory() as directory:
        checkpoint = write_checkpoint(Path(directory), OracleDistribution.random(0))
        model = load_model(LoadOptions(str(checkpoint), trust_remote_code=True))
        print(f"\n# oracle: examples/oracle-pairs.jsonl ({', '.join(p['id'] for p in lines)})")
        compare(model, pair_records(lines), args, truth)


PARTS = {"demo": part_demo, "oracle": part_oracle}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", action="append", choices=list(PARTS), help="what to measure (default: all)")
    parser.add_argument("--seeds", type=int, default=40, help="seeds per pair (default 40)")
    parser.add_argument("--samples", type=int, default=32, help="passes per side (default 32)")
    parser.add_argument("--pairs", type=int, default=12, help="demo shuffled pairs (default 12)")
    parser.add_argument("--estimator", action="append", type=Estimator,
                        help="default: control-variate and stratified")  # fmt: skip
    parser.add_argument("--no-rank", dest="rank", action="store_false", help="skip the old coupling by rank")
    args = parser.parse_args()
    args.estimators = args.estimator or [Estimator.control_variate, Estimator.stratified]
    for part in args.part or list(PARTS):
        PARTS[part](args)


if __name__ == "__main__":
    main()
