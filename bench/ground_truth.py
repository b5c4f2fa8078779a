"""The paper's synthetic DNA experiment (Section 5.1): estimated against true NLL.

    python bench/ground_truth.py                 # bundled dna8 model, examples/dna8.jsonl
    python bench/ground_truth.py --draws 8 16 32 64 128

For each number of draws the default (`stratified`) estimator scores all 128 sequences; the fit
to the true NLL is printed as R² and mean absolute error, and the smallest number of draws that
reaches R² ≥ 0.95 and MAE ≤ 0.1 nats is reported. `exact` (all 255 masks per sequence) shows what
the model itself has learnt, free of Monte Carlo noise. Per-sequence values for the largest
number of draws are printed with --verbose.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from itdd_cli.bundled import bundled_path  # noqa: E402
from itdd_cli.estimators import Estimator  # noqa: E402
from itdd_cli.models import LoadOptions, load_model  # noqa: E402
from itdd_cli.runner import Command, Settings, score  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def fit(estimates: list[float], truths: list[float]) -> tuple[float, float]:
    """(R² of the estimates as predictions of the truth, mean absolute error)."""
    mean = statistics.fmean(truths)
    residual = sum((e - t) ** 2 for e, t in zip(estimates, truths, strict=True))
    total = sum((t - mean) ** 2 for t in truths)
    return 1 - residual / total, statistics.fmean(abs(e - t) for e, t in zip(estimates, truths, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(bundled_path("dna8")))
    parser.add_argument("--data", type=Path, default=ROOT / "examples" / "dna8.jsonl")
    parser.add_argument("--draws", type=int, nargs="+", default=[4, 8, 16, 32, 64, 128])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    model = load_model(LoadOptions(args.model))
    rows = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]
    objects = [(i + 1, {"id": r["id"], "text": r["text"]}) for i, r in enumerate(rows)]
    truths = [r["true_nll"] for r in rows]
    exact = [row["nll"] for row in score(Command.nll, objects, model, Settings(Estimator.exact))]
    r2, mae = fit(exact, truths)
    print(f"# {len(rows)} sequences, true NLL {min(truths):.3f}–{max(truths):.3f} nats")
    print(f"exact (255 masks each)   R² {r2:.4f}   MAE {mae:.4f} nats")
    reached = None
    for draws in args.draws:
        results = list(score(Command.nll, objects, model, Settings(Estimator.stratified, draws, args.seed)))
        estimates = [row["nll"] for row in results]
        r2, mae = fit(estimates, truths)
        mean_se = statistics.fmean(row["nll_se"] for row in results)
        print(f"stratified, {draws:>4} draws  R² {r2:.4f}   MAE {mae:.4f} nats   mean SE {mean_se:.4f}")
        if reached is None and r2 >= 0.95 and mae <= 0.1:
            reached = draws
    if args.verbose:
        print("\nid        sequence  true     estimate  ± SE")
        for row, result in zip(rows, results, strict=True):
            print(f"{row['id']}  {row['text']}  {row['true_nll']:.4f}  {result['nll']:.4f}  {result['nll_se']:.4f}")
    verdict = f"reached with {reached} draws" if reached else "not reached with the draws tried"
    print(f"\ntarget R² ≥ 0.95 and MAE ≤ 0.1 nats: {verdict}")


if __name__ == "__main__":
    main()
