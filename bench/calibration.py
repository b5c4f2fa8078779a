"""Error bars at small -n on the oracle: error / SE over seeds, per estimator and -n.

    python bench/calibration.py                           # every oracle record and pair, -n 8 16 32, 200 seeds
    python bench/calibration.py --texts badcab --samples 8 --seeds 400

For each record (examples/oracle-nll.jsonl, true_nll) and pair (examples/oracle-pairs.jsonl,
true_log_ratio, coupled) the draws run in-process on the oracle's exact conditionals
(`tests/support/oracle_draws.py`). A row that enumerated every masked set is counted as exact (its value
is checked); a row within float rounding of the truth (the chain rule's whole orders) as well;
the rest give z = error / SE. Printed: root-mean-square z (1 when the SE is honest), the share of
|z| > 3 (about 0.3 % for a normal z), and how many rows were exact. About a minute per record.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from itdd_cli.core.settings import Settings  # noqa: E402
from itdd_cli.estimators import MONTE_CARLO  # noqa: E402
from itdd_cli.oracle import OracleDistribution  # noqa: E402
from tests.support.oracle_draws import run  # noqa: E402


def _cases(texts: list[str] | None) -> list[tuple[str, str, list[str], float]]:
    cases = []
    for line in (ROOT / "examples/oracle-nll.jsonl").read_text().splitlines():
        row = json.loads(line)
        if texts is None or row["text"] in texts:
            cases.append((row["text"], "", [row["text"]], row["true_nll"]))
    for line in (ROOT / "examples/oracle-pairs.jsonl").read_text().splitlines():
        row = json.loads(line)
        name = f"{row['chosen']}/{row['rejected']}"
        if texts is None or name in texts:
            cases.append((name, row.get("prompt", ""), [row["chosen"], row["rejected"]], row["true_log_ratio"]))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", nargs="*", help="records (text) or pairs (chosen/rejected); default: all")
    parser.add_argument("--samples", type=int, nargs="*", default=[8, 16, 32])
    parser.add_argument("--seeds", type=int, default=200)
    args = parser.parse_args()
    distribution = OracleDistribution.random(0)  # scripts/make_oracle.py's default: the examples' truths
    print("| case | estimator | -n | rms z | abs z > 3 | exact rows |")
    print("|---|---|---|---|---|---|")
    for name, prompt, sides, truth in _cases(args.texts):
        for estimator in MONTE_CARLO:
            for samples in args.samples:
                scores, exact = [], 0
                for seed in range(args.seeds):
                    draws = run(distribution, prompt, sides, Settings(estimator, samples, seed))
                    estimate = draws.difference() if len(sides) == 2 else draws.estimates()[0]
                    error = estimate.value - truth
                    if abs(error) < 1e-9:
                        exact += 1
                    elif not estimate.se > 0:  # 0 on a wrong number, or NaN (the runner refuses it)
                        scores.append(math.inf if estimate.se == 0 else math.nan)
                    else:
                        scores.append(error / estimate.se)
                finite = [z for z in scores if math.isfinite(z)]
                rms = math.sqrt(sum(z * z for z in finite) / len(finite)) if finite else math.nan
                beyond = sum(not abs(z) <= 3 for z in scores) / len(scores) if scores else 0.0
                print(f"| {name} | {estimator.value} | {samples} | {rms:.2f} | {beyond:.1%} | {exact} |", flush=True)


if __name__ == "__main__":
    main()
