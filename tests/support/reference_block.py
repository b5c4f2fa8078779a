"""Independent plain-PyTorch forwards of the block-diffusion and MoE families, written from the
published maths (docs/formats-block-moe.md), sharing no code with itdd or transformers.

One naive decoder covers them all: per-head loops, explicit softmax, a per-token loop for the
routers. `allowed[i, j]` says whether query i may attend to key j (block-causal, padding, …).
"""

from __future__ import annotations

import math

import torch


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight


def rope(x: torch.Tensor, theta: float, fraction: float) -> torch.Tensor:
    """Rotate-half RoPE on the first `fraction` of each head's channels; x: (heads, T, d)."""
    rotated_dim = int(x.shape[-1] * fraction)
    part, rest = x[..., :rotated_dim], x[..., rotated_dim:]
    inv_freq = theta ** (-torch.arange(0, rotated_dim, 2, dtype=torch.float64) / rotated_dim)
    angles = torch.arange(x.shape[1], dtype=torch.float64)[:, None] * inv_freq[None]
    cos, sin = torch.cat([angles.cos()] * 2, -1).float(), torch.cat([angles.sin()] * 2, -1).float()
    half = rotated_dim // 2
    turned = torch.cat([-part[..., half:], part[..., :half]], dim=-1)
    return torch.cat([part * cos + turned * sin, rest], dim=-1)


def swiglu(x: torch.Tensor, w: dict, p: str) -> torch.Tensor:
    return (torch.nn.functional.silu(x @ w[p + "gate_proj.weight"].T) * (x @ w[p + "up_proj.weight"].T)) @ w[
        p + "down_proj.weight"
    ].T


def route_softmax(logits: torch.Tensor, top_k: int, normalise: bool) -> list[list[tuple[int, float]]]:
    """Per token: softmax over all experts, the k largest, optionally renormalised among them."""
    choices = []
    for row in logits:
        probs = torch.softmax(row.double(), -1)
        order = sorted(range(len(probs)), key=lambda e: -float(probs[e]))[:top_k]
        weights = [float(probs[e]) for e in order]
        if normalise:
            weights = [v / sum(weights) for v in weights]
        choices.append(list(zip(order, weights, strict=True)))
    return choices


def route_grouped_sigmoid(logits, bias, top_k, groups, keep_groups, scaling) -> list[list[tuple[int, float]]]:
    """Per token: sigmoid scores; the bias only for choosing (groups ranked by the sum of their two
    best biased scores, the best `keep_groups` kept, then the k best experts in them); weights are
    the unbiased scores of the chosen experts, normalised to sum 1, times `scaling`."""
    choices = []
    for row in logits:
        scores = torch.sigmoid(row.double())
        biased = scores + bias.double()
        per_group = len(scores) // groups
        group_rank = []
        for g in range(groups):
            members = sorted((float(biased[e]) for e in range(g * per_group, (g + 1) * per_group)), reverse=True)
            group_rank.append((members[0] + members[1], g))
        kept = {g for _, g in sorted(group_rank, reverse=True)[:keep_groups]}
        candidates = [e for e in range(len(scores)) if e // per_group in kept]
        chosen = sorted(candidates, key=lambda e: -float(biased[e]))[:top_k]
        total = sum(float(scores[e]) for e in chosen)
        choices.append([(e, float(scores[e]) / total * scaling) for e in chosen])
    return choices


def moe(x: torch.Tensor, w: dict, p: str, choices) -> torch.Tensor:
    out = torch.zeros_like(x)
    for t, chosen in enumerate(choices):
        for expert, weight in chosen:
            out[t] += weight * swiglu(x[t : t + 1], w, f"{p}experts.{expert}.")[0]
    return out


def decoder(w: dict, cfg: dict, ids: list[int], allowed: torch.Tensor, log_routes: list | None = None) -> torch.Tensor:
    """Logits (T, V). cfg: heads, kv_heads, head_dim, eps, theta, rotary (fraction), qk_norm, layers,
    names (embed, final_norm, head, q/k/v/o, q_norm/k_norm), mlp(layer) → 'dense' | 'softmax' | 'grouped',
    and the routing settings. A fused `qkv` name is split by rows [q | k | v]."""
    names = cfg["names"]
    x = w[names["embed"]][torch.tensor(ids)]
    width, heads, kv_heads, hd = len(ids), cfg["heads"], cfg["kv_heads"], cfg["head_dim"]
    bias = torch.zeros(width, width).masked_fill(~allowed, -math.inf)
    for layer in range(cfg["layers"]):
        p = f"model.layers.{layer}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], cfg["eps"])
        if "qkv" in names:
            q_rows, kv_rows = heads * hd, kv_heads * hd
            fused = h @ w[p + names["qkv"]].T
            q, k, v = fused[:, :q_rows], fused[:, q_rows : q_rows + kv_rows], fused[:, q_rows + kv_rows :]
        else:
            q, k, v = (h @ w[p + names[n] + "weight"].T + w.get(p + names[n] + "bias", 0) for n in "qkv")
        q = q.view(width, heads, hd).transpose(0, 1)
        k = k.view(width, kv_heads, hd).transpose(0, 1)
        v = v.view(width, kv_heads, hd).transpose(0, 1)
        if cfg["qk_norm"]:
            q, k = rms_norm(q, w[p + names["q_norm"]], cfg["eps"]), rms_norm(k, w[p + names["k_norm"]], cfg["eps"])
        q, k = rope(q, cfg["theta"], cfg["rotary"]), rope(k, cfg["theta"], cfg["rotary"])
        outputs = []
        for head in range(heads):
            group = head // (heads // kv_heads)
            scores = q[head] @ k[group].T / math.sqrt(hd) + bias
            outputs.append(torch.softmax(scores, -1) @ v[group])
        x = x + torch.cat(outputs, -1) @ w[p + names["o"]].T
        n = rms_norm(x, w[p + "post_attention_layernorm.weight"], cfg["eps"])
        kind = cfg["mlp"](layer)
        if kind == "dense":
            x = x + swiglu(n, w, p + "mlp.")
            continue
        logits = n @ w[p + "mlp.gate.weight"].T
        if kind == "softmax":
            choices = route_softmax(logits, cfg["top_k"], cfg["normalise"])
        else:
            choices = route_grouped_sigmoid(logits, w[p + "mlp.gate.expert_bias"], cfg["top_k"], cfg["groups"],
                                            cfg["keep_groups"], cfg["scaling"])  # fmt: skip
        if log_routes is not None:
            log_routes.append([frozenset(e for e, _ in chosen) for chosen in choices])
        x = x + moe(n, w, p + "mlp.", choices)
        if kind == "grouped":
            x = x + swiglu(n, w, p + "mlp.shared_experts.")
    return rms_norm(x, w[names["final_norm"]], cfg["eps"]) @ w[names["head"]].T


QWEN = {"embed": "model.embed_tokens.weight", "final_norm": "model.norm.weight", "head": "lm_head.weight",
        "q": "self_attn.q_proj.", "k": "self_attn.k_proj.", "v": "self_attn.v_proj.", "o": "self_attn.o_proj.weight",
        "q_norm": "self_attn.q_norm.weight", "k_norm": "self_attn.k_norm.weight"}  # fmt: skip
LING = {"embed": "model.word_embeddings.weight", "final_norm": "model.norm.weight", "head": "lm_head.weight",
        "qkv": "attention.query_key_value.weight", "o": "attention.dense.weight",
        "q_norm": "attention.query_layernorm.weight", "k_norm": "attention.key_layernorm.weight"}  # fmt: skip


def block_causal(length: int, valid: int, block_size: int | None) -> torch.Tensor:
    """(T, T) bool: keys beyond `valid` are padding; with blocks, key block ≤ query block."""
    allowed = torch.zeros(length, length, dtype=torch.bool)
    allowed[:, :valid] = True
    if block_size is not None:
        blocks = torch.arange(length) // block_size
        allowed &= blocks[None, :] <= blocks[:, None]
    return allowed


def layer_norm(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(((x - mean) ** 2).mean(-1, keepdim=True) + 1e-5) * weight


def dit(w: dict, heads: int, ids: list[int], allowed: torch.Tensor) -> torch.Tensor:
    """Logits (T, V) of MDLM's / BD3-LM's DiT at time 0: adaLN-modulated pre-norm blocks, rotary
    attention (θ 10⁴, rotate-half), GELU(tanh) MLP, the mask column left in (callers drop it)."""
    b = "backbone."
    x = w[b + "vocab_embed.embedding"][torch.tensor(ids)]
    width, dim = x.shape
    hd = dim // heads
    frequencies = torch.exp(-math.log(10000) * torch.arange(128, dtype=torch.float32) / 128)
    embedding = torch.cat([torch.cos(0 * frequencies), torch.sin(0 * frequencies)])  # σ = 0
    c = torch.nn.functional.silu(embedding @ w[b + "sigma_map.mlp.0.weight"].T + w[b + "sigma_map.mlp.0.bias"])
    c = torch.nn.functional.silu(c @ w[b + "sigma_map.mlp.2.weight"].T + w[b + "sigma_map.mlp.2.bias"])
    bias = torch.zeros(width, width).masked_fill(~allowed, -math.inf)
    layer = 0
    while f"{b}blocks.{layer}.norm1.weight" in w:
        p = f"{b}blocks.{layer}."
        modulation = c @ w[p + "adaLN_modulation.weight"].T + w[p + "adaLN_modulation.bias"]
        shift1, scale1, gate1, shift2, scale2, gate2 = modulation.chunk(6)
        h = layer_norm(x, w[p + "norm1.weight"]) * (1 + scale1) + shift1
        qkv = (h @ w[p + "attn_qkv.weight"].T).view(width, 3, heads, hd)
        q, k, v = (qkv[:, i].transpose(0, 1) for i in range(3))
        q, k = rope(q, 10000.0, 1.0), rope(k, 10000.0, 1.0)
        out = torch.cat([torch.softmax(q[i] @ k[i].T / math.sqrt(hd) + bias, -1) @ v[i] for i in range(heads)], -1)
        x = x + gate1 * (out @ w[p + "attn_out.weight"].T)
        n = layer_norm(x, w[p + "norm2.weight"]) * (1 + scale2) + shift2
        mlp = torch.nn.functional.gelu(n @ w[p + "mlp.0.weight"].T + w[p + "mlp.0.bias"], approximate="tanh")
        x = x + gate2 * (mlp @ w[p + "mlp.2.weight"].T + w[p + "mlp.2.bias"])
        layer += 1
    shift, scale = (
        c @ w[b + "output_layer.adaLN_modulation.weight"].T + w[b + "output_layer.adaLN_modulation.bias"]
    ).chunk(2)
    n = layer_norm(x, w[b + "output_layer.norm_final.weight"]) * (1 + scale) + shift
    return n @ w[b + "output_layer.linear.weight"].T + w[b + "output_layer.linear.bias"]
