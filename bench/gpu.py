"""The engine on a GPU at LLaDA-8B geometry: tokens/s, MFU, and how close it comes to the ceiling.

    python bench/gpu.py                 # CUDA: 8B geometry (1B when the card has < 40 GiB), ≈ 3–4 min
    python bench/gpu.py --smoke         # CPU: a tiny geometry, seconds; tests/test_gpu_bench.py runs it

A randomly initialised LLaDA (Llama, bidirectional) is built in bf16 directly on the device
(d 4096, 32 layers, MLP 12288, vocabulary 126,464). Two input sets: short records (32–128
tokens, like ARC/HellaSwag prompt + answer) and long ones (512 tokens). For each:
  engine cold   `runner.score` in a fresh Engine, the first time this process sees the set;
  engine warm   the same again (shapes, kernels and allocator already seen);
  reference     LLaDA's published loop: one record at a time, 16 draws per batch, full logits;
  ceiling       the bare forward + cross-entropy at the scored positions on its own
                bucketed batches (ladder widths, token budget), staged on the device, warm.
Printed per set: seconds, tokens/s (real tokens, padding excluded), MFU (the useful FLOPs of
those tokens against the card's dense bf16 peak), peak memory, distinct batch shapes, and the
ratios engine/ceiling (ceiling time / engine time) and engine/reference (reference / engine).
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import string
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.throughput import reference  # noqa: E402
from itdd_cli.estimators import Estimator, draw_noise, plan_masks, record_generator  # noqa: E402
from itdd_cli.models import LoadOptions, load_model  # noqa: E402
from itdd_cli.scoring.engine import GPU_MAX_TOKENS  # noqa: E402
from itdd_cli.scoring.runner import Command, Settings, score  # noqa: E402
from itdd_cli.scoring.shapes import rung  # noqa: E402
from tests.support.family_checkpoints import write_llada  # noqa: E402

GEOMETRIES = {  # d, layers, MLP, heads, vocabulary
    "8b": dict(d=4096, layers=32, mlp=12288, heads=32, vocab=126_464),
    "1b": dict(d=2048, layers=22, mlp=5632, heads=32, vocab=126_464),
    "tiny": dict(d=64, layers=2, mlp=128, heads=4, vocab=512),
}
PEAK_BF16 = {"H100 PCIe": 756e12, "H100": 989e12, "H200": 989e12, "GH200": 989e12, "A100": 312e12}  # dense


def card_peak(device: str) -> tuple[str, float | None]:
    if not device.startswith("cuda"):
        return "cpu", None
    name = torch.cuda.get_device_name()
    for key, peak in PEAK_BF16.items():  # "H100 PCIe" is tried before "H100"
        if key in name:
            return name, peak
    return name, None


def build_model(geometry: dict, device: str, directory: Path):
    """An itdd LLaDA adapter whose network is a random one of `geometry`, made in bf16 on `device`."""
    write_llada(directory, mask=geometry["vocab"] - 2, embedding=geometry["vocab"], vocab=48, max_length=4096)
    model = load_model(LoadOptions(str(directory), dtype="bfloat16", device=device))
    config = {"d_model": geometry["d"], "n_layers": geometry["layers"], "n_heads": geometry["heads"],
              "n_kv_heads": geometry["heads"], "mlp_hidden_size": geometry["mlp"], "embedding_size": geometry["vocab"],
              "max_sequence_length": 4096, "rope_theta": 500000.0}  # fmt: skip
    model_class, llama = model.build_config(config)
    llama._attn_implementation = "sdpa"
    with torch.device(device):
        network = model_class._from_config(llama, torch_dtype=torch.bfloat16)
    model.model = network.eval()
    parameters = sum(p.numel() for p in network.parameters())
    model.info = dataclasses.replace(model.info, vocab_size=geometry["vocab"], parameters=parameters)
    return model


def make_records(kind: str, count: int, framing: int, seed: int) -> list[tuple[int, dict]]:
    """Texts whose framed length (with BOS) is 32–128 tokens (short) or exactly 512 (long)."""
    rng = random.Random(seed)
    lengths = [rng.randint(32, 128) if kind == "short" else 512 for _ in range(count)]
    return [(i + 1, {"text": "".join(rng.choice(string.ascii_lowercase) for _ in range(n - framing))})
            for i, n in enumerate(lengths)]  # fmt: skip


def useful_flops(geometry: dict, width: int, scored: int) -> float:
    """Multiply-add FLOPs of one row: the body on its real tokens (attention over them) and the
    LM head at its scored positions only."""
    d, layers = geometry["d"], geometry["layers"]
    per_token = layers * (2 * 4 * d * d + 2 * 3 * d * geometry["mlp"] + 2 * 2 * width * d)
    return width * per_token + scored * 2 * d * geometry["vocab"]


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measured(device: str, function):
    """(seconds, peak memory in GiB, result) of one call."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    result = function()
    synchronize(device)
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else float("nan")
    return seconds, peak, result


def plans(model, records, samples: int, seed: int):
    """Each record's framed ids and its stratified masks (the draws the engine and reference use)."""
    out = []
    for _, obj in records:
        framed = model.frame([], model.encode(obj["text"]))
        noise = draw_noise(samples, framed.length, record_generator(seed, framed.ids, [framed.start, 0]))
        out.append((framed, plan_masks(Estimator.stratified, noise, framed.length).masks))
    return out


def ceiling_batches(model, planned, device: str, budget: int):
    """The rows cut into ladder-width batches under the token budget, staged on the device."""
    rows = sorted(((framed, mask) for framed, masks in planned for mask in masks), key=lambda r: -len(r[0].ids))
    batches, start = [], 0
    while start < len(rows):
        width = rung(len(rows[start][0].ids))
        count = max(1, budget // width)
        chunk = rows[start : start + count]
        start += len(chunk)
        ids = torch.full((len(chunk), width), model.info.pad_id, dtype=torch.long)
        where = torch.zeros((len(chunk), width), dtype=torch.bool)
        real = torch.zeros((len(chunk), width), dtype=torch.bool)
        for b, (framed, mask) in enumerate(chunk):
            ids[b, : len(framed.ids)] = torch.tensor(framed.ids)
            where[b, framed.start : framed.start + framed.length] = mask
            real[b, : len(framed.ids)] = True
        targets = ids[where]
        noisy = ids.masked_fill(where, model.info.mask_id)
        bias = None if bool(real.all()) else torch.zeros(real.shape, dtype=torch.bfloat16).masked_fill(
            ~real, torch.finfo(torch.bfloat16).min)[:, None, None, :]  # fmt: skip
        rows_, columns = where.nonzero(as_tuple=True)
        batches.append(tuple(t.to(device) if t is not None else None for t in (noisy, bias, rows_, columns, targets)))
    return batches


@torch.inference_mode()
def run_ceiling(model, batches) -> None:
    network = model.model
    for noisy, bias, rows, columns, targets in batches:
        hidden = network.model(input_ids=noisy, attention_mask=bias).last_hidden_state
        logits = network.lm_head(hidden[rows, columns])
        torch.nn.functional.cross_entropy(logits, targets, reduction="none")


def shapes_of(model, function):
    """(result, distinct (rows, width) shapes the model was called with)."""
    seen = set()
    forward = model.target_logprobs

    def recording(input_ids, *rest):
        seen.add(tuple(input_ids.shape))
        return forward(input_ids, *rest)

    model.target_logprobs = recording
    try:
        return function(), len(seen)
    finally:
        model.target_logprobs = forward


def bench_set(model, geometry, kind: str, args, peak: float | None) -> None:
    device = model.info.device
    count = args.short_records if kind == "short" else args.long_records
    records = make_records(kind, count, len(model.prefix_ids), seed=1 if kind == "short" else 2)
    settings = Settings(Estimator.stratified, samples=args.samples)
    planned = plans(model, records, args.samples, settings.seed)
    tokens = sum(len(framed.ids) * len(masks) for framed, masks in planned)
    flops = sum(useful_flops(geometry, len(framed.ids), int(masks.sum())) for framed, masks in planned)

    def engine():
        return shapes_of(model, lambda: list(score(Command.nll, records, model, settings)))

    cold = measured(device, engine)
    warm = measured(device, engine)
    batches = ceiling_batches(model, planned, device, args.max_tokens)
    run_ceiling(model, batches)  # warm-up: the ceiling is always warm
    ceiling = measured(device, lambda: run_ceiling(model, batches))
    ref = measured(device, lambda: reference(model, records, args.samples, settings.seed))
    rows = cold[2][0]
    gap = max(abs(row["nll"] - value) for row, value in zip(rows, ref[2], strict=True))
    print(f"\n## {kind} records: {count} records × {args.samples} draws, {tokens} tokens, "
          f"lengths {min(len(f.ids) for f, _ in planned)}–{max(len(f.ids) for f, _ in planned)}")  # fmt: skip
    print(f"{'':14}{'seconds':>9}{'tokens/s':>11}{'MFU':>7}{'peak GiB':>10}{'shapes':>8}")
    for name, (seconds, memory, result) in [("engine cold", cold), ("engine warm", warm), ("reference", ref),
                                            ("ceiling", ceiling)]:  # fmt: skip
        mfu = f"{flops / seconds / peak:6.1%}" if peak else "   n/a"
        shapes = f"{result[1]:8d}" if name.startswith("engine") else f"{'':8}"
        gib = f"{memory:10.1f}" if memory == memory else f"{'n/a':>10}"  # NaN on the CPU
        print(f"{name:14}{seconds:9.2f}{tokens / seconds:11.0f} {mfu}{gib}{shapes}")
    print(f"engine/ceiling: cold {ceiling[0] / cold[0]:.2f}, warm {ceiling[0] / warm[0]:.2f}")
    print(f"engine/reference: cold {ref[0] / cold[0]:.2f}x, warm {ref[0] / warm[0]:.2f}x")
    print(f"largest |engine − reference| estimate: {gap:.2e} nats (same draws, bf16)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a tiny geometry on the CPU: checks the script runs")
    parser.add_argument("--geometry", choices=list(GEOMETRIES), default=None, help="default: 8b, 1b if short of memory")
    parser.add_argument("--samples", type=int, default=32, help="draws per record")
    parser.add_argument("--short-records", type=int, default=96)
    parser.add_argument("--long-records", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=GPU_MAX_TOKENS, help="the ceiling's token budget")
    args = parser.parse_args()
    if args.smoke:
        device, name = "cpu", args.geometry or "tiny"
        args.samples, args.short_records, args.long_records, args.max_tokens = 4, 3, 1, 2048
    else:
        if not torch.cuda.is_available():
            raise SystemExit("bench/gpu.py needs a CUDA device (or --smoke for the CPU check)")
        device = "cuda"
        memory = torch.cuda.get_device_properties(0).total_memory / 2**30
        name = args.geometry or ("8b" if memory >= 40 else "1b")
    card, peak = card_peak(device)
    geometry = GEOMETRIES[name]
    with tempfile.TemporaryDirectory() as directory:
        start = time.perf_counter()
        model = build_model(geometry, device, Path(directory))
        synchronize(device)
        built = time.perf_counter() - start
    rating = f"dense bf16 peak {peak / 1e12:.0f} TFLOP/s" if peak else "no known peak: MFU n/a"
    print(f"# {card}: {name} geometry (d {geometry['d']}, {geometry['layers']} layers, MLP {geometry['mlp']}, "
          f"vocabulary {geometry['vocab']}), {model.info.parameters / 1e9:.2f} B parameters, bf16, built in "
          f"{built:.1f} s; {rating}")  # fmt: skip
    print(f"# torch {torch.__version__}")
    for kind in ("short", "long"):
        bench_set(model, geometry, kind, args, peak)
    print(f"\nattention kernel chosen by the engine: {model.info.attention or 'none recorded'}")


if __name__ == "__main__":
    main()
