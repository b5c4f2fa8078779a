"""Independent plain-PyTorch forwards of LLaDA and Dream, written from docs/formats.md ("LLaDA" and "Dream").

Deliberately naive (loops over layers and heads, explicit softmax), sharing no code with
itdd or transformers: the adapters must agree with these to 1e-4 in float32.
"""

from __future__ import annotations

import math

import torch


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rope(x: torch.Tensor, theta: float) -> torch.Tensor:
    """Rotate-half RoPE over the whole head dim; x: (heads, T, d), positions 0..T−1."""
    d = x.shape[-1]
    inv_freq = theta ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)
    angles = torch.arange(x.shape[1], dtype=torch.float64)[:, None] * inv_freq[None]  # (T, d/2)
    cos, sin = torch.cat([angles.cos()] * 2, -1).float(), torch.cat([angles.sin()] * 2, -1).float()
    half = d // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


def decoder_logits(w, prefix_of, ids: list[int], valid: int, cfg: dict) -> torch.Tensor:
    """Logits (T, V) of one sequence; only the first `valid` positions are real keys."""
    x = w[prefix_of("embed")][torch.tensor(ids)]
    width, heads, kv_heads = len(ids), cfg["heads"], cfg["kv_heads"]
    hd = x.shape[-1] // heads
    key_bias = torch.zeros(width)
    key_bias[valid:] = -math.inf
    for layer in range(cfg["layers"]):
        p = lambda name, layer=layer: w[prefix_of(name, layer)]  # noqa: E731
        bias = lambda name, layer=layer: w.get(prefix_of(name, layer) + "bias", 0)  # noqa: E731
        h = rms_norm(x, p("attn_norm"), cfg["eps"])
        q = (h @ p("q").T + bias("q_b")).view(width, heads, hd).transpose(0, 1)
        k = (h @ p("k").T + bias("k_b")).view(width, kv_heads, hd).transpose(0, 1)
        v = (h @ p("v").T + bias("v_b")).view(width, kv_heads, hd).transpose(0, 1)
        q, k = rope(q, cfg["theta"]), rope(k, cfg["theta"])
        outputs = []
        for head in range(heads):
            group = head // (heads // kv_heads)  # consecutive query heads share a kv head
            scores = q[head] @ k[group].T / math.sqrt(hd) + key_bias
            outputs.append(torch.softmax(scores, -1) @ v[group])
        x = x + torch.cat(outputs, -1) @ p("o").T
        n = rms_norm(x, p("ffn_norm"), cfg["eps"])
        x = x + (torch.nn.functional.silu(n @ p("gate").T) * (n @ p("up").T)) @ p("down").T
    return rms_norm(x, w[prefix_of("final_norm")], cfg["eps"]) @ w[prefix_of("head")].T


LLADA_NAMES = {
    "attn_norm": "attn_norm.weight", "q": "q_proj.weight", "k": "k_proj.weight", "v": "v_proj.weight",
    "o": "attn_out.weight", "ffn_norm": "ff_norm.weight", "gate": "ff_proj.weight", "up": "up_proj.weight",
    "down": "ff_out.weight", "q_b": "q_proj.", "k_b": "k_proj.", "v_b": "v_proj.",
}  # fmt: skip
DREAM_NAMES = {
    "attn_norm": "input_layernorm.weight", "q": "self_attn.q_proj.weight", "k": "self_attn.k_proj.weight",
    "v": "self_attn.v_proj.weight", "o": "self_attn.o_proj.weight", "ffn_norm": "post_attention_layernorm.weight",
    "gate": "mlp.gate_proj.weight", "up": "mlp.up_proj.weight", "down": "mlp.down_proj.weight",
    "q_b": "self_attn.q_proj.", "k_b": "self_attn.k_proj.", "v_b": "self_attn.v_proj.",
}  # fmt: skip


def llada_names(tied: bool):
    def name(part: str, layer: int | None = None) -> str:
        if part == "embed" or (part == "head" and tied):
            return "model.transformer.wte.weight"
        if part == "head":
            return "model.transformer.ff_out.weight"
        if part == "final_norm":
            return "model.transformer.ln_f.weight"
        return f"model.transformer.blocks.{layer}.{LLADA_NAMES[part]}"

    return name


def dream_names(part: str, layer: int | None = None) -> str:
    fixed = {"embed": "model.embed_tokens.weight", "head": "lm_head.weight", "final_norm": "model.norm.weight"}
    return fixed[part] if part in fixed else f"model.layers.{layer}.{DREAM_NAMES[part]}"
