"""Peak memory of a LLaDA 2 MoE scored by itdd: parameters counted, and measured on a GPU.

    python bench/moe_memory.py                          # counts; runs a 2-layer slice on the CPU
    python bench/moe_memory.py --device cuda            # LLaDA2.0-mini's full geometry (16 B) in bf16
    python bench/moe_memory.py --device cuda --layers 4 # a slice, to check quickly

The model is LLaDA2.0-mini's published geometry with random weights, built by the same adapter
code path that loads the hub checkpoint (`LLaDA2Adapter.build_config` → GLM-4 MoE), placed
directly on the device in bfloat16 (writing 32 GB of random safetensors first would only test
the disk). It then scores per-block rows as the engine batches them: rows of `--length` tokens,
`--block`-token blocks, a token budget of 16,384 per batch (the engine's GPU default), the LM
head on the scored block only. Printed: parameters, weight bytes, and on CUDA the peak
allocated memory (torch.cuda.max_memory_allocated).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from itdd_cli.models.block import Layout  # noqa: E402
from itdd_cli.models.llada2 import LLaDA2Adapter  # noqa: E402

# LLaDA2.0-mini's config.json (hub), the keys the adapter reads.
MINI = {
    "vocab_size": 157184, "hidden_size": 2048, "intermediate_size": 5120, "num_hidden_layers": 20,
    "num_attention_heads": 16, "num_key_value_heads": 4, "head_dim": 128, "rms_norm_eps": 1e-6,
    "rope_theta": 600000.0, "partial_rotary_factor": 0.5, "num_experts": 256, "num_shared_experts": 1,
    "num_experts_per_tok": 8, "n_group": 8, "topk_group": 4, "routed_scaling_factor": 2.5,
    "moe_intermediate_size": 512, "first_k_dense_replace": 1, "use_qkv_bias": False, "use_bias": False,
    "tie_word_embeddings": False, "max_position_embeddings": 8192,
}  # fmt: skip


def counted(config: dict) -> int:
    d, layers, dense = config["hidden_size"], config["num_hidden_layers"], config["first_k_dense_replace"]
    heads, kv, hd = config["num_attention_heads"], config["num_key_value_heads"], config["head_dim"]
    attention = d * (heads + 2 * kv) * hd + heads * hd * d + 2 * d + 2 * hd
    expert = 3 * d * config["moe_intermediate_size"]
    moe = config["num_experts"] * (expert + d) + config["num_shared_experts"] * expert
    return (2 * config["vocab_size"] * d + d + layers * attention + dense * 3 * d * config["intermediate_size"]
            + (layers - dense) * moe)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--layers", type=int, default=None, help="default: 20 on CUDA, 2 on the CPU")
    parser.add_argument("--length", type=int, default=2048, help="tokens per row (the block scored is the last)")
    parser.add_argument("--block", type=int, default=32)
    parser.add_argument("--budget", type=int, default=16384, help="padded tokens per forward batch")
    args = parser.parse_args()
    full = counted(MINI)
    print(f"LLaDA2.0-mini: {full / 1e9:.2f} B parameters, {2 * full / 1e9:.1f} GB of weights in bfloat16")
    layers = args.layers or (MINI["num_hidden_layers"] if args.device.startswith("cuda") else 2)
    config = MINI | {"num_hidden_layers": layers}
    adapter = object.__new__(LLaDA2Adapter)  # the adapter's own config mapping, without a checkpoint
    model_class, hf_config = adapter.build_config(config)
    device, dtype = torch.device(args.device), torch.bfloat16
    with torch.device("meta"):
        model = model_class(hf_config)
    model = model.to_empty(device=device).to(dtype).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0, 0.02)
    adapter.model, adapter.block_size, adapter.layout = model, args.block, Layout.per_block
    adapter.shifted_logits, adapter.vocab_limit = False, None
    rows = max(1, args.budget // args.length)
    ids = torch.randint(0, MINI["vocab_size"] - 1, (rows, args.length))
    score = torch.zeros_like(ids, dtype=torch.bool)
    score[:, -args.block :] = torch.rand(rows, args.block) < 0.5
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    logprobs = adapter.target_logprobs(ids, torch.ones_like(ids), score, ids).cpu()  # waits for the device
    seconds = time.perf_counter() - start
    built = sum(p.numel() for p in model.parameters())
    print(f"built {layers} of {MINI['num_hidden_layers']} layers: {built / 1e9:.2f} B parameters on {device}; "
          f"one batch of {rows} × {args.length} tokens, {len(logprobs)} scored, in {seconds:.1f} s")  # fmt: skip
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
        print(f"peak allocated {peak / 1e9:.1f} GB (weights {2 * built / 1e9:.1f} GB)")


if __name__ == "__main__":
    main()
