"""Engine throughput against the published reference algorithm and the raw forward ceiling.

    python bench/throughput.py                       # CPU, small LLaDA-format model
    python bench/throughput.py --device cuda --d 1024 --layers 8 --vocab 32000 --records 64

All three score the same records (lengths 16–256 tokens) with the same number of draws, on
the same model, in this one process:
  (a) itdd's engine (`runner.score`: rows of many records packed under a token budget, LM head
      only at masked positions);
  (b) the reference algorithm as published (LLaDA's `get_log_likelihood`): one record at a time,
      its draws in batches of 16, full logits at every position, cross-entropy on the masked ones;
  (c) the ceiling: the engine's own forward batches replayed as bare model calls, with no
      estimator, batching or bookkeeping work around them.
Printed: the times, engine/reference speed-up and ceiling/engine efficiency.
"""

from __future__ import annotations

import argparse
import random
import string
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from itdd_cli.estimators import Estimator, draw_noise, plan_masks, record_generator  # noqa: E402
from itdd_cli.models import LoadOptions, load_model  # noqa: E402
from itdd_cli.scoring.runner import Command, Settings, score  # noqa: E402
from tests.support.family_checkpoints import write_llada  # noqa: E402

REFERENCE_BATCH = 16


def make_records(count: int, seed: int) -> list[tuple[int, dict]]:
    rng = random.Random(seed)
    letters = string.ascii_lowercase + " "
    return [(i + 1, {"text": "".join(rng.choice(letters) for _ in range(rng.randint(16, 256)))}) for i in range(count)]


@torch.inference_mode()
def reference(model, records, samples: int, seed: int) -> list[float]:
    """One record at a time, draws batched 16 at a time, full logits everywhere."""
    lm = model.model
    device = lm.device
    estimates = []
    for _, obj in records:
        framed = model.frame([], model.encode(obj["text"]))
        ids = torch.tensor(framed.ids)
        noise = draw_noise(samples, framed.length, record_generator(seed, framed.ids, [framed.start, 0]))
        plan = plan_masks(Estimator.stratified, noise, framed.length)
        total = 0.0
        for first in range(0, samples, REFERENCE_BATCH):
            masks = plan.masks[first : first + REFERENCE_BATCH]
            batch = ids.repeat(len(masks), 1)
            where = torch.zeros_like(batch, dtype=torch.bool)
            where[:, framed.start : framed.start + framed.length] = masks
            noisy = batch.masked_fill(where, model.info.mask_id).to(device)
            logits = lm(input_ids=noisy).logits  # (16, T, V): the head on every position
            losses = torch.nn.functional.cross_entropy(
                logits[where.to(device)].float(), batch[where].to(device), reduction="none"
            )
            per_row = torch.zeros(len(masks), device=device).index_add_(0, where.nonzero()[:, 0].to(device), losses)
            total += float((per_row.double().cpu() * plan.weights[first : first + REFERENCE_BATCH]).sum())
        estimates.append(total / samples)
    return estimates


def flops_per_token(d: int, layers: int, vocab: int, context: int) -> tuple[float, float]:
    """(body, head) multiply-add FLOPs of one position of write_llada's model (mlp = 2d, no GQA)."""
    body = layers * (2 * 4 * d * d + 2 * 3 * d * (2 * d) + 2 * 2 * context * d)
    return float(body), float(2 * d * vocab)


def work_ratio(batches, records, model, samples: int, d: int, layers: int, vocab: int) -> tuple[float, float]:
    """(reference FLOPs / engine FLOPs, the LM head's share of the reference's FLOPs): what the
    skipped arithmetic alone buys; any speed-up beyond it comes from memory traffic (full logits)
    and per-call overhead, not from computing less."""
    engine = 0.0
    for ids, _, score_mask, _ in batches:
        rows, width = ids.shape
        body, head = flops_per_token(d, layers, vocab, width)
        engine += rows * width * body + int(score_mask.sum()) * head
    reference = head_part = 0.0
    for _, obj in records:
        width = len(model.frame([], model.encode(obj["text"])).ids)
        body, head = flops_per_token(d, layers, vocab, width)
        reference += samples * width * (body + head)
        head_part += samples * width * head
    return reference / engine, head_part / reference


def timed(function):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = function()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=12)
    parser.add_argument("--samples", type=int, default=128)
    parser.add_argument("--d", type=int, default=256, help="hidden size")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=16384, help="embedding rows (LM head width)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--max-tokens", type=int, default=None, help="engine token budget (default: its own)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        write_llada(Path(directory), d=args.d, heads=max(1, args.d // 64), kv_heads=max(1, args.d // 64),
                    layers=args.layers, mlp=args.d * 2, embedding=args.vocab, max_length=512)  # fmt: skip
        model = load_model(LoadOptions(directory, dtype=args.dtype, device=args.device))
    records = make_records(args.records, seed=0)
    # stratified: the reference re-computes the same draws, which only this estimator's plan gives it
    settings = Settings(estimator=Estimator.stratified, samples=args.samples, max_tokens=args.max_tokens)
    tokens = sum(len(model.encode(obj["text"])) for _, obj in records)
    print(f"# model: LLaDA format, d={args.d}, layers={args.layers}, head width {args.vocab}, "
          f"{model.info.dtype} on {model.info.device}; {args.records} records, {tokens} scored tokens, "
          f"{args.samples} draws")  # fmt: skip

    list(score(Command.nll, records[:2], model, Settings(Estimator.stratified, samples=8)))  # warm-up
    batches = []
    forward = model.target_logprobs

    def recording(*tensors):
        batches.append(tuple(t.clone() for t in tensors))
        return forward(*tensors)

    model.target_logprobs = recording
    engine_time, rows = timed(lambda: list(score(Command.nll, records, model, settings)))
    model.target_logprobs = forward
    ceiling_time, _ = timed(lambda: [forward(*batch) for batch in batches])
    reference_time, estimates = timed(lambda: reference(model, records, args.samples, settings.seed))

    gap = max(abs(row["nll"] - est) for row, est in zip(rows, estimates, strict=True))
    print(f"engine     {engine_time:8.2f} s   ({len(batches)} forward batches)")
    print(f"reference  {reference_time:8.2f} s   (16 draws per batch, full logits)")
    print(f"ceiling    {ceiling_time:8.2f} s   (the engine's batches as bare forward calls)")
    print(f"speed-up engine/reference: {reference_time / engine_time:.2f}x")
    print(f"efficiency ceiling/engine: {ceiling_time / engine_time:.2f}")
    print(f"largest |engine − reference| estimate: {gap:.2e} nats (same draws)")
    ratio, head_share = work_ratio(batches, records, model, args.samples, args.d, args.layers, args.vocab)
    print(f"work ratio reference/engine: {ratio:.2f}x in FLOPs (LM head {head_share:.0%} of the reference's; "
          "the rest of any speed-up is memory traffic and call overhead)")  # fmt: skip


if __name__ == "__main__":
    main()
