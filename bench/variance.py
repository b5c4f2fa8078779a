"""Variance of each estimator, and of coupled vs independent ratios, at equal forward passes.

    python bench/variance.py                      # on the exact-conditional oracle
    python bench/variance.py --model dna8         # on the bundled DNA model (trained)
    python bench/variance.py --model demo         # on the bundled English model (trained)
    python bench/variance.py --seeds 60 --samples 64

For every record the estimate is repeated over --seeds seeds; the variance across seeds is
compared between estimators (time-integral / time-free, time-free / stratified) and between
independent and coupled ratio masks (independent / coupled). Ratios > 1 mean the second is
better. Pairs are structurally similar: one letter changed (oracle, dna8) or the same words
shuffled (demo).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from itdd_cli.bundled import bundled_path  # noqa: E402
from itdd_cli.estimators import Estimator  # noqa: E402
from itdd_cli.models import LoadOptions, load_model  # noqa: E402
from itdd_cli.oracle import OracleDistribution, write_checkpoint  # noqa: E402
from itdd_cli.runner import Command, Settings, score  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TEXTS = ["abcdabcd", "ddcbaabc", "badcab", "cabdd"]
# Structurally similar pairs: the two sides differ in one or two letters (one pair in length too).
PAIRS = [("ab", "cadbac", "cabbac"), (None, "dcbadc", "dcbcdc"), ("c", "abcaab", "abdaab"), (None, "bacd", "bacdd")]


def bundled_cases(name: str) -> tuple[list[str], list[tuple[str | None, str, str]]]:
    """Texts and similar pairs for a bundled model, from the example files."""
    if name == "dna8":
        texts = [json.loads(line)["text"] for line in (ROOT / "examples" / "dna8.jsonl").read_text().splitlines()]
        flip = {"A": "C", "C": "G", "G": "T", "T": "A"}
        return texts[:4], [(None, t, t[:3] + flip[t[3]] + t[4:]) for t in texts[4:8]]
    lines = (ROOT / "examples" / "shuffled-pairs.jsonl").read_text().splitlines()[:8]
    pairs = [json.loads(line) for line in lines]
    return [p["chosen"] for p in pairs[:4]], [(None, p["chosen"], p["rejected"]) for p in pairs[4:8]]


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
    parser.add_argument("--model", default="oracle", choices=["oracle", "dna8", "demo"])
    args = parser.parse_args()
    distribution = OracleDistribution.random(args.oracle_seed)
    with tempfile.TemporaryDirectory() as directory:
        if args.model == "oracle":
            model = load_model(
                LoadOptions(str(write_checkpoint(Path(directory), distribution)), trust_remote_code=True)
            )
            cases, pair_cases = TEXTS, PAIRS
        else:
            model = load_model(LoadOptions(str(bundled_path(args.model))))
            cases, pair_cases = bundled_cases(args.model)
        texts = [(i + 1, {"text": t}) for i, t in enumerate(cases)]
        nll_var = {e: variances(model, Command.nll, texts, e, args, "nll") for e in MONTE_CARLO}
        print(f"# {args.model} nll: variance across {args.seeds} seeds, {args.samples} draws each")
        print(f"{'text':<10} {'stratified':>11} {'time-free':>11} {'time-int.':>11} {'tf/strat':>9} {'ti/tf':>7}")
        for i, text in enumerate(cases):
            s, f, t = (nll_var[e][i] for e in MONTE_CARLO)
            print(f"{text[:10]:<10} {s:11.4f} {f:11.4f} {t:11.4f} {f / s:9.2f} {t / f:7.2f}")
        pairs = [
            (i + 1, ({"prompt": p} if p else {}) | {"chosen": c, "rejected": r})
            for i, (p, c, r) in enumerate(pair_cases)
        ]
        print(f"\n# ratio: independent / coupled variance, {args.samples} draws per pair")
        print(f"{'pair':<18} " + " ".join(f"{e.value:>14}" for e in MONTE_CARLO))
        factors = {}
        for estimator in MONTE_CARLO:
            coupled = variances(model, Command.ratio, pairs, estimator, args, "log_ratio")
            independent = variances(model, Command.ratio, pairs, estimator, args, "log_ratio", independent=True)
            factors[estimator] = [ind / cop for ind, cop in zip(independent, coupled, strict=True)]
        for i, (_, c, r) in enumerate(pair_cases):
            print(f"{(c[:8] + ' vs ' + r[:8]):<18} " + " ".join(f"{factors[e][i]:14.2f}" for e in MONTE_CARLO))
        geo = {e: statistics.geometric_mean(factors[e]) for e in MONTE_CARLO}
        print(f"{'geometric mean':<18} " + " ".join(f"{geo[e]:14.2f}" for e in MONTE_CARLO))


if __name__ == "__main__":
    main()
