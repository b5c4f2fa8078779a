"""Calibration of `--estimator chain-rule` on a block-diffusion model: error / SE over seeds.

A tiny random SDAR checkpoint with blocks of `--block` tokens scores one prompt block and two text
blocks; the truth is every mask of every block enumerated (tests/test_block_families.py). `--orders`
sets the fewest whole orders a block draws (`chain_rule.BLOCK_ORDERS`; 2 is what plain records use
and what blocks used before): below it a block draws single steps.

    python bench/block_chain_rule.py --block 8 --samples 16 32 64 --orders 2 16 --seeds 100
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.block_checkpoints import write_sdar  # noqa: E402

import itdd_cli.scoring.blocks as blocks  # noqa: E402
from itdd_cli.estimators import Estimator  # noqa: E402
from itdd_cli.models import LoadOptions, load_model  # noqa: E402
from itdd_cli.scoring.runner import Command, Settings, score  # noqa: E402
from tests.test_block_families import brute_force_nll, weights  # noqa: E402

TEXTS = {4: ("abcd", "quietzeb"), 8: ("abcdefgh", "quietzebrasatomi")}  # one prompt block, two text blocks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--block", type=int, choices=sorted(TEXTS), default=8)
    parser.add_argument("--samples", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--orders", type=int, nargs="+", default=[2, blocks.BLOCK_ORDERS])
    parser.add_argument("--seeds", type=int, default=100)
    args = parser.parse_args()
    path = write_sdar(Path(tempfile.mkdtemp()) / "sdar", block_size=args.block)
    model = load_model(LoadOptions(str(path)))
    prompt, text = TEXTS[args.block]
    framed = model.frame(model.encode(prompt), model.encode(text))
    truth = brute_force_nll(weights({"sdar": path}, "sdar"), "sdar", framed.ids, framed.start, framed.length,
                            args.block, model.info.mask_id)  # fmt: skip
    for fewest in args.orders:
        blocks.BLOCK_ORDERS = fewest  # read by BlockDraws.of for every record it cuts
        for samples in args.samples:
            scores = []
            for seed in range(args.seeds):
                [row] = score(Command.cond_nll, enumerate([{"prompt": prompt, "response": text}], 1), model,
                              Settings(Estimator.chain_rule, samples, seed=seed))  # fmt: skip
                scores.append((row["nll"] - truth) / row["nll_se"])
            spread = math.sqrt(statistics.fmean(z * z for z in scores))
            beyond = sum(abs(z) > 3 for z in scores) / len(scores)
            print(f"{args.block}-token blocks, whole orders from {fewest}, -n {samples}: rms error/SE {spread:.2f}, "
                  f"|z| > 3 for {beyond:.1%} of {args.seeds}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
