"""MDLM's diffusion transformer (DiT with adaLN conditioning and rotary attention), in plain
PyTorch, written from the maths in docs/formats.md ("MDLM") so that no flash-attn or remote code is needed.

Parameter names match the checkpoint's (`backbone.` prefix stripped), so weights load strictly.
LayerNorms run in float32, as in the original. The output layer is applied by the caller on
the rows it needs (`final_layer`), so the 50k-column head never runs on unscored positions.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from itdd_cli.models.weights import Renamer, refuse_weight_mismatch

if TYPE_CHECKING:
    from itdd_cli.models.base import ModelInfo, ScoringModel
    from itdd_cli.models.loading import LoadOptions

FREQUENCY_SIZE = 256  # sinusoidal time embedding width, fixed in MDLM


class LayerNorm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.float(), [x.shape[-1]], eps=1e-5) * self.weight


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


class TimeEmbedding(nn.Module):
    def __init__(self, cond_dim: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(FREQUENCY_SIZE, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim))

    def forward(self, sigma: torch.Tensor) -> torch.Tensor:
        half = FREQUENCY_SIZE // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32, device=sigma.device) / half)
        args = sigma[:, None].float() * freqs[None]
        embedding = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # cos half first
        return self.mlp(embedding.to(self.mlp[0].weight.dtype))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, cond_dim: int) -> None:
        super().__init__()
        self.heads = heads
        self.norm1 = LayerNorm(dim)
        self.attn_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.attn_out = nn.Linear(dim, dim, bias=False)
        self.norm2 = LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(approximate="tanh"), nn.Linear(4 * dim, dim))
        self.adaLN_modulation = nn.Linear(cond_dim, 6 * dim)

    def forward(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, c: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        batch, width, dim = x.shape
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(c)[:, None].chunk(6, dim=2)
        h = modulate(self.norm1(x), shift1, scale1).to(x.dtype)
        qkv = self.attn_qkv(h).view(batch, width, 3, self.heads, dim // self.heads)  # (B, T, 3, H, d)
        q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))  # (B, H, T, d)
        q = q * cos.to(q.dtype) + rotate_half(q) * sin.to(q.dtype)
        k = k * cos.to(k.dtype) + rotate_half(k) * sin.to(k.dtype)
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask).transpose(1, 2).reshape(batch, width, dim)
        x = x + gate1 * self.attn_out(attended)
        return x + gate2 * self.mlp(modulate(self.norm2(x), shift2, scale2).to(x.dtype))


class FinalLayer(nn.Module):
    def __init__(self, dim: int, vocab_size: int, cond_dim: int) -> None:
        super().__init__()
        self.norm_final = LayerNorm(dim)
        self.linear = nn.Linear(dim, vocab_size)
        self.adaLN_modulation = nn.Linear(cond_dim, 2 * dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """x: (P, D) hidden rows; c: (P, C) the conditioning of each row's sequence."""
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=-1)
        return self.linear(modulate(self.norm_final(x), shift, scale).to(self.linear.weight.dtype))


class Embedding(nn.Module):
    def __init__(self, vocab_size: int, dim: int) -> None:
        super().__init__()
        self.embedding = nn.Parameter(torch.empty(vocab_size, dim))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embedding[ids]


class Rotary(nn.Module):
    def __init__(self, head_dim: int) -> None:
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / 10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos and sin tables (B, 1, T, d) of position ids (B, T), broadcast over the heads."""
        freqs = positions.to(self.inv_freq.dtype)[..., None] * self.inv_freq  # (B, T, d/2)
        table = torch.cat((freqs, freqs), dim=-1)[:, None]  # (B, 1, T, d)
        return table.cos(), table.sin()


class DiT(nn.Module):
    def __init__(self, vocab_size: int, dim: int, blocks: int, heads: int, cond_dim: int) -> None:
        super().__init__()
        self.vocab_embed = Embedding(vocab_size, dim)
        self.sigma_map = TimeEmbedding(cond_dim)
        self.rotary_emb = Rotary(dim // heads)
        self.blocks = nn.ModuleList(Block(dim, heads, cond_dim) for _ in range(blocks))
        self.output_layer = FinalLayer(dim, vocab_size, cond_dim)

    def hidden(
        self,
        ids: torch.Tensor,
        sigma: torch.Tensor,
        mask: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Final hidden states (B, T, D) and the conditioning vectors c (B, C); `mask` (B, 1, T, T)
        is additive (BD3-LM's block mask), None attends everywhere (MDLM); `positions` (B, T) are
        the rotary position ids (None: 0..T−1; BD3-LM's [noisy ‖ clean] rows repeat them)."""
        x = self.vocab_embed(ids)
        c = F.silu(self.sigma_map(sigma)).to(x.dtype)
        if positions is None:
            positions = torch.arange(ids.shape[1], device=ids.device)[None]
        cos, sin = self.rotary_emb(positions)
        for block in self.blocks:
            x = block(x, cos, sin, c, mask)
        return x, c

    def forward(self, ids: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        x, c = self.hidden(ids, sigma)
        batch, width, dim = x.shape
        rows = self.output_layer(x.reshape(-1, dim), c.repeat_interleave(width, dim=0))
        return rows.view(batch, width, -1)


def load_strictly(model: DiT, weights: dict[str, torch.Tensor], options: LoadOptions,
                  rename: Renamer | None = None) -> None:  # fmt: skip
    """The DiT's weights, each tensor named and shaped as the DiT expects (else refused, naming it), on the
    run's device and dtype, RoPE's angles kept in float32 (MDLM's and SEDD's published layout alike)."""
    expected = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    refuse_weight_mismatch(
        options.model,
        missing=expected.keys() - weights.keys(),
        unexpected=weights.keys() - expected.keys(),
        mismatched=[(name, tuple(weights[name].shape), shape) for name, shape in expected.items()
                    if name in weights and tuple(weights[name].shape) != shape],
        rename=rename,
    )  # fmt: skip
    model.load_state_dict(weights, strict=True)
    model.to(device=options.torch_device, dtype=options.torch_dtype).eval()
    model.rotary_emb.inv_freq.data = model.rotary_emb.inv_freq.float()  # angles stay fp32


def frame_by_eos(adapter: ScoringModel) -> None:
    """MDLM's and SEDD's training text sits between two EOS tokens (none if the tokenizer has no EOS)."""
    eos = adapter.tokenizer.eos_token_id
    adapter.prefix_ids = [int(eos)] if eos is not None else []
    adapter.suffix_ids = list(adapter.prefix_ids)


def dit_info(adapter: ScoringModel, options: LoadOptions, max_length: int, note: str, vocab_size: int) -> ModelInfo:
    """A DiT model's info: time-conditioned, rows never padded (no attention mask), the mask as pad id."""
    return adapter.model_info(options, adapter.model, mask_id=adapter.mask_id, pad_id=adapter.mask_id, pads=False,
                              max_length=max_length, time_input=True, framing_note=note, vocab_size=vocab_size)
