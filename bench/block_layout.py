"""Block diffusion: what the runner does ([noisy ‖ clean] rows) against one row per block and draw.

    python bench/block_layout.py                                  # CPU, small SDAR-format model
    python bench/block_layout.py --device cuda --d 1024 --layers 8 --vocab 32000 --length 512 --block 4 32

Both layouts score the same records with the same draws (each block its own) on the same random
SDAR-format checkpoint, in this one process, through itdd's engine (rows of many records share
batches under the token budget, identical rows computed once):
  (a) concatenated, what `itdd nll` runs (`runner.score`): one row per distinct draw index holds
      a noisy copy of the scored blocks, each masked by its own draw, and a clean copy of the
      blocks before the last, at shared position ids, under the three-part block mask;
  (b) per-block, the baseline (tests/support/per_block.py): block b's row is the clean blocks < b followed
      by block b with its draw's masks, later blocks absent.
Printed per block size: the largest difference between the two layouts' NLLs (they must agree to
float32 rounding), forward rows and tokens, draw·tokens per second (records × scored tokens ×
draws per block / seconds, the work both do) and the ratio. `--prompt N` scores cond-nll with an
N-token prompt before each record (the lm-eval shape: a long context, a short response).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from itdd_cli.estimators import Estimator  # noqa: E402
from itdd_cli.models import LoadOptions, load_model  # noqa: E402
from itdd_cli.scoring.engine import BatchProgress, Engine  # noqa: E402
from itdd_cli.scoring.runner import Command, Settings, score  # noqa: E402
from tests.support.block_checkpoints import sized, write_sdar  # noqa: E402
from tests.support.per_block import score_per_block  # noqa: E402

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def texts(count: int, length: int, seed: int) -> list[str]:
    generator = random.Random(seed)
    return ["".join(generator.choice(LETTERS) for _ in range(length)) for _ in range(count)]


def run_layout(name: str, model, command: Command, records, settings: Settings) -> tuple[list[dict], BatchProgress]:
    """Rows and the engine's final progress (forward rows and tokens) of one layout."""
    seen: list[BatchProgress] = [BatchProgress(0, 0, 0, 0)]
    if name == "concatenated":
        rows = list(score(command, enumerate(records, 1), model, settings, on_batch=seen.append))
    else:
        engine = Engine(model, max_tokens=settings.max_tokens, on_batch=seen.append)
        rows = score_per_block(command, records, model, settings, engine=engine)
    return rows, seen[-1]


def forward_rows(model, name: str, command: Command, records, settings: Settings) -> int:
    """Rows sent through the model, counted at the adapter."""
    method = "concatenated_logprobs" if name == "concatenated" else "target_logprobs"
    original, count = getattr(model, method), [0]

    def counting(input_ids, *rest):
        count[0] += input_ids.shape[0]
        return original(input_ids, *rest)

    setattr(model, method, counting)
    try:
        run_layout(name, model, command, records, settings)
    finally:
        delattr(model, method)
    return count[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=512)
    parser.add_argument("--length", type=int, default=128, help="scored tokens per record")
    parser.add_argument("--prompt", type=int, default=0, help="prompt tokens per record (cond-nll); 0: nll")
    parser.add_argument("--block", type=int, nargs="+", default=[4, 32])
    parser.add_argument("--records", type=int, default=4)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3, help="best of this many timed runs per layout")
    args = parser.parse_args()
    heads = max(2, args.d // 64)
    sizes = dict(
        d=args.d, heads=heads, kv_heads=heads, head_dim=64, layers=args.layers, mlp=3 * args.d, vocab=args.vocab
    )
    responses = texts(args.records, args.length, seed=0)
    if args.prompt:
        command = Command.cond_nll
        prompts = texts(args.records, args.prompt, seed=1)
        records = [{"prompt": p, "response": r} for p, r in zip(prompts, responses, strict=True)]
    else:
        command, records = Command.nll, [{"text": r} for r in responses]
    settings = Settings(estimator=Estimator.stratified, samples=args.samples, max_tokens=args.max_tokens)
    cuda = args.device.startswith("cuda")
    with tempfile.TemporaryDirectory() as root, sized(**sizes):
        path = write_sdar(Path(root) / "sdar", block_size=args.block[0])
        print(f"SDAR-format d={args.d} layers={args.layers} vocab={args.vocab} on {args.device}; {args.records} "
              f"records × {args.length} scored tokens (prompt {args.prompt}), {args.samples} draws per block")
        for block in args.block:
            model = load_model(LoadOptions(str(path), device=args.device, block_size=block))
            timings, outputs, progress = {}, {}, {}
            for name in ("per-block", "concatenated"):
                run_layout(name, model, command, records[:1], settings)  # warm-up
                timings[name] = math.inf
                for _ in range(args.repeats):  # the best run: other processes only ever slow one down
                    if cuda:
                        torch.cuda.synchronize()
                    start = time.perf_counter()
                    outputs[name], progress[name] = run_layout(name, model, command, records, settings)
                    if cuda:
                        torch.cuda.synchronize()
                    timings[name] = min(timings[name], time.perf_counter() - start)
            pairs = zip(outputs["per-block"], outputs["concatenated"], strict=True)
            difference = max(abs(a["nll"] - b["nll"]) / abs(a["nll"]) for a, b in pairs)
            work = args.records * args.length * args.samples
            print(f"block {block}: max relative |Δ nll| between layouts {difference:.1e}")
            for name, seconds in timings.items():
                rows = forward_rows(model, name, command, records, settings)
                print(f"  {name:12s} {seconds:7.2f} s  {rows:>7,} forward rows  {progress[name].tokens:>10,} forward "
                      f"tokens  {work / seconds:>10,.0f} draw·tokens/s")  # fmt: skip
            print(f"  concatenated / per-block speed: {timings['per-block'] / timings['concatenated']:.2f}×")


if __name__ == "__main__":
    main()
