"""Peak memory of the target log-probabilities at LLaDA's vocabulary: the one-pass float32
log_softmax (before) against the chunked normalisation (`models.base.target_log_softmax`).

    python bench/logits_memory.py                       # CPU: peak RSS of a fresh process each
    python bench/logits_memory.py --device cuda --positions 16384

Each variant runs in its own process on the same bf16 logits (P scored positions × V); printed:
the peak above the logits themselves and the largest difference between the two results.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIANT = """
import json, resource, sys, torch
sys.path.insert(0, {root!r})
from itdd_cli.models.base import target_log_softmax
device, positions, vocab, variant = {device!r}, {positions}, {vocab}, {variant!r}
generator = torch.Generator(device=device).manual_seed(0)
logits = torch.randn(positions, vocab, generator=generator, device=device, dtype=torch.bfloat16).mul_(3)
targets = torch.randint(0, vocab, (positions,), generator=generator, device=device)
cuda = device.startswith("cuda")
if cuda:
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
else:
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
if variant == "one-pass":
    out = torch.log_softmax(logits.float(), dim=-1).gather(1, targets[:, None]).squeeze(1)
else:
    out = target_log_softmax(logits, targets)
peak = torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"extra": peak - base, "values": out.double().cpu().tolist()[:4096]}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--positions", type=int, default=1024, help="scored positions in one batch")
    parser.add_argument("--vocab", type=int, default=126_464)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    root = str(Path(__file__).resolve().parents[1])
    results = {}
    for variant in ("one-pass", "chunked"):
        code = VARIANT.format(root=root, device=args.device, positions=args.positions, vocab=args.vocab,
                              variant=variant)  # fmt: skip
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        results[variant] = json.loads(done.stdout)
    logits_mib = args.positions * args.vocab * 2 / 2**20
    print(f"# {args.positions} positions × {args.vocab} vocabulary, bf16 logits {logits_mib:.0f} MiB, on {args.device}")
    for variant, result in results.items():
        print(f"{variant:9} peak above the logits: {result['extra'] / 2**20:8.0f} MiB")
    gap = max(abs(a - b) for a, b in zip(results["one-pass"]["values"], results["chunked"]["values"], strict=True))
    print(f"largest |one-pass − chunked| log p: {gap:.1e}")


if __name__ == "__main__":
    main()
