"""Variance of each estimator, and of coupled vs independent ratios, at equal forward passes.

    python bench/variance.py                      # on the exact-conditional oracle
    python bench/variance.py --seeds 60 --samples 64

For every record the estimate is repeated over --seeds seeds; the variance across seeds is
compared between estimators (time-integral / time-free, time-free / stratified) and between
independent and coupled ratio masks (independent / coupled). Ratios > 1 mean the second is
better. On the oracle the truth is known, so the mean bias in standard errors is printed too.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from itdd_cli.estimators import Estimator
from itdd_cli.models import LoadOptions, load_model
from itdd_cli.oracle import OracleDistribution, write_checkpoint
from itdd_cli.runner import Command, Settings, score

TEXTS = ["abcdabcd", "ddcbaabc", "badcab", "cabdd"]
# Structurally similar pairs: the two sides differ in one or two letters (one pair in length too).
PAIRS = [("ab", "cadbac", "cabbac"), (None, "dcbadc", "dcbcdc"), ("c", "abcaab", "abdaab"), (None, "bacd", "bacdd")]
MONTE_CARLO = [Estimator.stratified, Estimator.time_free, Estimator.time_integral]


def variances(model, command, objects, estimator, args, key, independent=False):
    """Per record, the variance of the estimate across seeds."""
    runs = [
        list(score(command, objects, model, Settings(estimator, args.samples, seed, independent)))
        for seed in range(args.seeds)
    ]
    return [statistics.variance(run[i][key] for run in runs) for i in range(len(objects))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=40, help="repetitions per estimate (default 40)")
    parser.add_argument("--samples", type=int, default=32, help="draws per estimate (default 32)")
    parser.add_argument("--oracle-seed", type=int, default=0)
    args = parser.parse_args()
    distribution = OracleDistribution.random(args.oracle_seed)
    with tempfile.TemporaryDirectory() as directory:
        model = load_model(LoadOptions(str(write_checkpoint(Path(directory), distribution)), trust_remote_code=True))
        texts = [(i + 1, {"text": t}) for i, t in enumerate(TEXTS)]
        nll_var = {e: variances(model, Command.nll, texts, e, args, "nll") for e in MONTE_CARLO}
        print(f"# nll: variance across {args.seeds} seeds, {args.samples} draws each (oracle seed {args.oracle_seed})")
        print(f"{'text':<10} {'stratified':>11} {'time-free':>11} {'time-int.':>11} {'tf/strat':>9} {'ti/tf':>7}")
        for i, text in enumerate(TEXTS):
            s, f, t = (nll_var[e][i] for e in MONTE_CARLO)
            print(f"{text:<10} {s:11.4f} {f:11.4f} {t:11.4f} {f / s:9.2f} {t / f:7.2f}")
        pairs = [
            (i + 1, ({"prompt": p} if p else {}) | {"chosen": c, "rejected": r}) for i, (p, c, r) in enumerate(PAIRS)
        ]
        print(f"\n# ratio: independent / coupled variance, {args.samples} draws per pair")
        print(f"{'pair':<18} " + " ".join(f"{e.value:>14}" for e in MONTE_CARLO))
        factors = {}
        for estimator in MONTE_CARLO:
            coupled = variances(model, Command.ratio, pairs, estimator, args, "log_ratio")
            independent = variances(model, Command.ratio, pairs, estimator, args, "log_ratio", independent=True)
            factors[estimator] = [ind / cop for ind, cop in zip(independent, coupled, strict=True)]
        for i, (_, c, r) in enumerate(PAIRS):
            print(f"{c + ' vs ' + r:<18} " + " ".join(f"{factors[e][i]:14.2f}" for e in MONTE_CARLO))
        geo = {e: statistics.geometric_mean(factors[e]) for e in MONTE_CARLO}
        print(f"{'geometric mean':<18} " + " ".join(f"{geo[e]:14.2f}" for e in MONTE_CARLO))


if __name__ == "__main__":
    main()
