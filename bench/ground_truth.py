"""The paper's synthetic DNA experiment (Section 5.1): estimated against true NLL.

    python bench/ground_truth.py                 # bundled dna8 model, examples/dna8.jsonl
    python bench/ground_truth.py --draws 8 16 32 64 128

For each number of draws the default (`stratified`) estimator scores all 128 sequences; the fit
to the true NLL is printed as R² and mean absolute error, and the smallest number of draws that
reaches R² ≥ 0.95 and MAE ≤ 0.1 nats is reported. `exact` (all 255 masks per sequence) shows what
the model itself has learnt, free of Monte Carlo noise. Per-sequence values for the largest
number of draws are printed with --verbose.

Because the distribution is known, so are its true conditionals p(x_i | x_visible); from them
the script also prints the standard error a *perfect* model would show at each number of draws
(the Monte Carlo noise floor), which separates the estimator's noise from the model's error.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from itdd_cli.bundled import bundled_path  # noqa: E402
from itdd_cli.estimators import Estimator  # noqa: E402
from itdd_cli.models import LoadOptions, load_model  # noqa: E402
from itdd_cli.scoring.runner import Command, Settings, score  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def fit(estimates: list[float], truths: list[float]) -> tuple[float, float]:
    """(R² of the estimates as predictions of the truth, mean absolute error)."""
    mean = statistics.fmean(truths)
    residual = sum((e - t) ** 2 for e, t in zip(estimates, truths, strict=True))
    total = sum((t - mean) ** 2 for t in truths)
    return 1 - residual / total, statistics.fmean(abs(e - t) for e, t in zip(estimates, truths, strict=True))


def ideal_draw_sd(sequences: list[str], truths: list[float]) -> float:
    """Mean over sequences of the per-draw standard deviation of `stratified` with the true
    conditionals, when its n draws spread evenly over the mask counts l (n a multiple of 2L)."""
    letters = sorted(set("".join(sequences)))
    x = torch.tensor([[letters.index(c) for c in s] for s in sequences])  # (S, L)
    length = x.shape[1]
    p = torch.tensor(truths, dtype=torch.float64).neg().exp()  # (S,)
    masks = torch.tensor([[(m >> i) & 1 for i in range(length)] for m in range(1, 2**length)], dtype=torch.bool)
    same = x[:, None, :] == x[None, :, :]  # (S, S, L): sequence y agrees with x at position i
    visible_agree = (same[:, None] | masks[None, :, None]).all(-1)  # (S, M, S): y consistent with x off M
    weight = visible_agree * p  # (S, M, S)
    conditional = torch.einsum("xmy,xyi->xmi", weight, same.double()) / weight.sum(-1, keepdim=True)
    values = length / masks.sum(-1) * (-conditional.log() * masks).sum(-1)  # (S, M): one draw's value
    counts = masks.sum(-1)
    within = sum(values[:, counts == k].var(1, correction=0) for k in range(1, length + 1)) / length
    return float(within.sqrt().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(bundled_path("dna8")))
    parser.add_argument("--data", type=Path, default=ROOT / "examples" / "dna8.jsonl")
    parser.add_argument("--draws", type=int, nargs="+", default=[16, 64, 128, 256, 512, 1024])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    model = load_model(LoadOptions(args.model))
    rows = [json.loads(line) for line in args.data.read_text().splitlines() if line.strip()]
    objects = [(i + 1, {"id": r["id"], "text": r["text"]}) for i, r in enumerate(rows)]
    truths = [r["true_nll"] for r in rows]
    floor = ideal_draw_sd([r["text"] for r in rows], truths)
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
        print(
            f"stratified, {draws:>4} draws  R² {r2:.4f}   MAE {mae:.4f} nats   mean SE {mean_se:.4f}"
            f"   (a perfect model: {floor / draws**0.5:.4f})"
        )
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
