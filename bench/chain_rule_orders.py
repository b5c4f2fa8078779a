"""The chain rule's error bar on plain records at small -n: error / SE over seeds against the exact
value, on the bundled `demo` model (whose conditionals are not consistent, so orders disagree).

    python bench/chain_rule_orders.py --samples 8 16 24 48 --seeds 200

Prints, per -n, the whole orders a record gets, the rms of error/SE and the share beyond 3 SE.
"""

from __future__ import annotations

import argparse
import math

from itdd_cli import Scorer

TEXTS = ["def f(x):", "for i in range(n):"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, nargs="+", default=[8, 16, 24, 48])
    parser.add_argument("--seeds", type=int, default=200)
    args = parser.parse_args()
    exact = Scorer.load("demo", estimator="exact", samples=8)
    truths = [result.nll for result in exact.nll(TEXTS)]
    tokens = [result.tokens for result in exact.nll(TEXTS)]
    print(f"texts {TEXTS}, scored tokens {tokens}, exact NLL {[round(t, 4) for t in truths]}")
    for samples in args.samples:
        scorer = exact.with_settings(estimator="chain-rule", samples=samples)
        z = []
        for seed in range(args.seeds):
            for result, truth in zip(scorer.with_settings(seed=seed).nll(TEXTS), truths, strict=True):
                error = result.nll - truth
                z.append(error / result.nll_se if result.nll_se > 0 else 0.0 if abs(error) < 1e-6 * truth else math.inf)
        rms = math.sqrt(sum(value * value for value in z) / len(z))
        beyond = sum(abs(value) > 3 for value in z) / len(z)
        orders = [samples // length for length in tokens]
        print(f"-n {samples:3d}: whole orders {orders}, rms error/SE {rms:.2f}, beyond 3 SE {100 * beyond:.1f} %")


if __name__ == "__main__":
    main()
