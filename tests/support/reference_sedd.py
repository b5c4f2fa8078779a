"""SEDD's published forward and training loss, written again from its model, graph, noise and
loss code (docs/formats.md, "SEDD") in plain PyTorch, sharing nothing with itdd_cli: the reference
the sedd family and the dse estimator are compared with."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _layer_norm(x, weight):
    return F.layer_norm(x.float(), [x.shape[-1]]) * weight[None, None, :]


def _rotary_qkv(qkv, inv_freq):
    """qkv (B, S, 3, H, d): rotate q and k by position, leave v (cos 1, sin 0), as SEDD's Rotary does."""
    seq = qkv.shape[1]
    freqs = torch.einsum("i,j->ij", torch.arange(seq, dtype=inv_freq.dtype), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos = emb.cos()[None, :, None, None, :].repeat(1, 1, 3, 1, 1)
    sin = emb.sin()[None, :, None, None, :].repeat(1, 1, 3, 1, 1)
    cos[:, :, 2], sin[:, :, 2] = 1.0, 0.0
    half = qkv.shape[-1] // 2
    rotated = torch.cat((-qkv[..., half:], qkv[..., :half]), dim=-1)
    return qkv * cos + rotated * sin


def _linear(x, w, name, bias=True):
    out = x @ w[name + ".weight"].T
    return out + w[name + ".bias"] if bias else out


def sedd_forward(w: dict, config: dict, indices: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """`SEDD.forward(indices, sigma)` in eval mode: log-scores (B, S, V), float32."""
    heads = config["model"]["n_heads"]
    x = w["vocab_embed.embedding"][indices]
    half = 128
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    args = sigma[:, None].float() * freqs[None]
    t_freq = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    c = F.silu(_linear(F.silu(_linear(t_freq, w, "sigma_map.mlp.0")), w, "sigma_map.mlp.2"))
    batch, seq, dim = x.shape
    for i in range(config["model"]["n_blocks"]):
        p = f"blocks.{i}."
        mod = _linear(c, w, p + "adaLN_modulation")[:, None].chunk(6, dim=2)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod
        skip = x
        h = _layer_norm(x, w[p + "norm1.weight"]) * (1 + scale_msa) + shift_msa
        qkv = (h @ w[p + "attn_qkv.weight"].T).view(batch, seq, 3, heads, dim // heads)
        qkv = _rotary_qkv(qkv, w["rotary_emb.inv_freq"])
        q, k, v = (qkv[:, :, j].transpose(1, 2) for j in range(3))  # (B, H, S, d)
        attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dim // heads), dim=-1) @ v
        x = skip + gate_msa * (attn.transpose(1, 2).reshape(batch, seq, dim) @ w[p + "attn_out.weight"].T)
        h = _layer_norm(x, w[p + "norm2.weight"]) * (1 + scale_mlp) + shift_mlp
        h = _linear(F.gelu(_linear(h, w, p + "mlp.0"), approximate="tanh"), w, p + "mlp.2")
        x = x + gate_mlp * h
    shift, scale = _linear(c, w, "output_layer.adaLN_modulation")[:, None].chunk(2, dim=2)
    x = _layer_norm(x, w["output_layer.norm_final.weight"]) * (1 + scale) + shift
    x = _linear(x, w, "output_layer.linear")
    if config["model"]["scale_by_sigma"]:
        esigm1_log = torch.where(sigma < 0.5, torch.expm1(sigma), sigma.exp() - 1).log().to(x.dtype)[:, None, None]
        x = x - esigm1_log - math.log(x.shape[-1] - 1)
    return torch.scatter(x, -1, indices[..., None], torch.zeros_like(x[..., :1]))


def noise(config: dict, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(σ, dσ) of `noise_lib`: LogLinearNoise() (eps 1e-3, whatever the config) or GeometricNoise."""
    if config["noise"]["type"] == "loglinear":
        eps = 1e-3
        return -torch.log1p(-(1 - eps) * t), (1 - eps) / (1 - (1 - eps) * t)
    sigmas = torch.tensor([config["noise"]["sigma_min"], config["noise"]["sigma_max"]], dtype=t.dtype)
    total = sigmas[0] ** (1 - t) * sigmas[1] ** t
    return total, total * (sigmas[1].log() - sigmas[0].log())


def absorbing_score_entropy(score, sigma, x, x0):
    dim = score.shape[-1]
    rel_ind = x == dim - 1
    esigm1 = torch.where(sigma < 0.5, torch.expm1(sigma), torch.exp(sigma) - 1)
    ratio = 1 / esigm1.expand_as(x)[rel_ind]
    other_ind = x0[rel_ind]
    neg_term = ratio * torch.gather(score[rel_ind], -1, other_ind[..., None]).squeeze(-1)
    pos_term = score[rel_ind][:, :-1].exp().sum(dim=-1)
    const = ratio * (ratio.log() - 1)
    entropy = torch.zeros(*x.shape, dtype=score.dtype)
    entropy[rel_ind] += pos_term - neg_term + const
    return entropy


def uniform_score_entropy(score, sigma, x, x0):
    dim = score.shape[-1]
    esigm1 = torch.where(sigma < 0.5, torch.expm1(sigma), torch.exp(sigma) - 1)
    ratio = 1 - dim / (esigm1 + dim)
    neg_term = score.mean(dim=-1) - torch.gather(score, -1, x[..., None]).squeeze(-1) / dim
    neg_term = torch.where(x == x0, ratio * neg_term, torch.gather(score, -1, x0[..., None]).squeeze(-1) / esigm1
                           + neg_term)  # fmt: skip
    const = torch.where(
        x == x0, (dim - 1) / dim * ratio * (ratio.log() - 1), ((-ratio.log() - 1) / ratio - (dim - 2)) / dim
    )
    sexp = score.exp()
    pos_term = sexp.mean(dim=-1) - torch.gather(sexp, -1, x[..., None]).squeeze(-1) / dim
    return pos_term - neg_term + const


def published_loss(w: dict, config: dict, batch: torch.Tensor, t: torch.Tensor, perturbed: torch.Tensor,
                   scored: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """`losses.get_loss_fn(...)(model, batch, t=t, perturbed_batch=perturbed)`: (B,). `scored` (S,) bool
    keeps the positions summed (SEDD sums them all; itdd's conditioning tokens are never corrupted)."""
    sigma, dsigma = noise(config, t)
    log_score = sedd_forward(w, config, perturbed, sigma).to(t.dtype)  # float64 t: the loss's maths in float64
    entropy = absorbing_score_entropy if config["graph"]["type"] == "absorb" else uniform_score_entropy
    loss = entropy(log_score, sigma[:, None], perturbed, batch)
    if scored is not None:
        loss = loss * scored[None]
    return (dsigma[:, None] * loss).sum(dim=-1)
