"""Shared by the training scripts: a small bidirectional Llama trained as a masked-diffusion LM
and saved in LLaDA's original on-disk format (so itdd loads it natively, with no remote code).

Objective: t ~ U(0, 1) per sequence, every scored token masked with probability t, loss = the
mean cross-entropy over the masked tokens of the batch (or of each row, `per_row`). Like LLaDA's
Σ CE / t (which has the same optimum), it is minimised by the true conditionals
p(x_i | unmasked), all that the I-MDCE estimators need; without the 1/t weight its gradients are
far less noisy, which matters for models trained in minutes on a CPU.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save_file

# LLaDA weight names for Llama's (inverse of itdd_cli.models.llada.KEY_MAPPING).
TO_LLADA = {
    "model.embed_tokens.": "model.transformer.wte.",
    "input_layernorm.": "attn_norm.",
    "self_attn.q_proj.": "q_proj.",
    "self_attn.k_proj.": "k_proj.",
    "self_attn.v_proj.": "v_proj.",
    "self_attn.o_proj.": "attn_out.",
    "post_attention_layernorm.": "ff_norm.",
    "mlp.gate_proj.": "ff_proj.",
    "mlp.up_proj.": "up_proj.",
    "mlp.down_proj.": "ff_out.",
    "model.norm.": "model.transformer.ln_f.",
    "lm_head.": "model.transformer.ff_out.",
}


def build_model(vocab: int, d: int, layers: int, heads: int, mlp: int, max_length: int, seed: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=vocab, hidden_size=d, intermediate_size=mlp, num_hidden_layers=layers,
                         num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=max_length,
                         rms_norm_eps=1e-5, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                         tie_word_embeddings=False, use_cache=False)  # fmt: skip
    config.is_causal = False
    return LlamaForCausalLM(config)


def train(model, batches: Callable[[torch.Generator], tuple[torch.Tensor, torch.Tensor, torch.Tensor]], mask_id: int,
          steps: int, lr: float, seed: int, log_every: int = 100, per_row: bool = False) -> None:  # fmt: skip
    """`batches(generator)` returns (ids, attention_mask, scorable) — scorable marks maskable tokens.

    `per_row`: average the cross-entropy inside each row first, so a row with few masked tokens
    (small t, where conditionals are sharpest) counts as much as a heavily masked one.
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    warmup = max(1, steps // 50)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))
    )
    model.train()
    start, running = time.time(), 0.0
    for step in range(steps):
        ids, attention, scorable = batches(generator)
        t = torch.rand(ids.shape[0], 1, generator=generator)  # (B, 1)
        masked = (torch.rand(ids.shape, generator=generator) < t) & scorable
        masked[:, 1] |= ~masked.any(1)  # at least one masked token per row
        logits = model(input_ids=ids.masked_fill(masked, mask_id), attention_mask=attention).logits
        if per_row:
            losses = torch.nn.functional.cross_entropy(logits[masked].float(), ids[masked], reduction="none")
            rows = masked.nonzero()[:, 0]
            sums = torch.zeros(ids.shape[0]).index_add(0, rows, losses)
            loss = (sums / masked.sum(1).clamp_min(1)).mean()
        else:
            loss = torch.nn.functional.cross_entropy(logits[masked].float(), ids[masked])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        running += loss.item()
        if (step + 1) % log_every == 0:
            print(f"step {step + 1}/{steps}  loss {running / log_every:.4f}  {time.time() - start:.0f} s", flush=True)
            running = 0.0
    model.eval()


def save_llada(model, directory: Path, mask_id: int, bos_id: int, eos_id: int, max_length: int) -> None:
    """Weights under LLaDA's names and a config.json with LLaDA's keys."""
    directory.mkdir(parents=True, exist_ok=True)
    weights = {}
    for name, tensor in model.state_dict().items():
        renamed = name.replace("model.layers.", "model.transformer.blocks.")
        for old, new in TO_LLADA.items():
            renamed = renamed.replace(old, new)
        weights[renamed] = tensor.detach().contiguous()
    save_file(weights, str(directory / "model.safetensors"))
    c = model.config
    config = {
        "model_type": "llada", "architectures": ["LLaDAModelLM"],
        "d_model": c.hidden_size, "n_layers": c.num_hidden_layers, "n_heads": c.num_attention_heads,
        "n_kv_heads": c.num_key_value_heads, "mlp_hidden_size": c.intermediate_size, "mlp_ratio": 4,
        "embedding_size": c.vocab_size, "vocab_size": c.vocab_size, "block_type": "llama",
        "activation_type": "silu", "layer_norm_type": "rms", "rms_norm_eps": c.rms_norm_eps,
        "layer_norm_with_affine": True, "include_bias": False, "include_qkv_bias": False, "rope": True,
        "rope_theta": 10000.0, "rope_full_precision": True, "weight_tying": False,
        "max_sequence_length": max_length, "mask_token_id": mask_id, "eos_token_id": eos_id,
        "pad_token_id": eos_id, "bos_token_id": bos_id, "alibi": False, "attention_layer_norm": False,
        "input_emb_norm": False, "scale_logits": False, "use_cache": False,
    }  # fmt: skip
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
