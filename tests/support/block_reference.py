"""Scores of the block-diffusion and MoE families computed on the independent reference forwards
(reference_block.py) with the tiny checkpoints' geometry: log-probabilities per position, and the
exact block estimate by enumerating every mask of every block."""

from __future__ import annotations

import math
from itertools import combinations

import torch

from tests.support.block_checkpoints import LLADA2, SIZES
from tests.support.families import FAMILY_CASES
from tests.support.family_checkpoints import MDLM
from tests.support.reference_block import LING, QWEN, block_causal, decoder, dit


def reference_config(family: str) -> dict:
    s = SIZES
    common = dict(heads=s["heads"], kv_heads=s["kv_heads"], head_dim=s["head_dim"], layers=s["layers"], eps=1e-6,
                  theta=10000.0, rotary=1.0, qk_norm=True, names=QWEN, top_k=s["top_k"],
                  mlp=lambda layer: "dense")  # fmt: skip
    if family == "fast-dllm-v2":
        return common | dict(qk_norm=False)
    if family == "llada-moe":
        return common | dict(eps=1e-5, mlp=lambda layer: "softmax", normalise=False)
    if family == "rnd1":
        return common | dict(mlp=lambda layer: "softmax", normalise=True)
    if family == "llada2":
        m = LLADA2
        return common | dict(names=LING, rotary=0.5, theta=600000.0, layers=m["layers"], top_k=m["top_k"],
                             groups=m["groups"], keep_groups=m["topk_group"], scaling=m["scaling"],
                             mlp=lambda layer: "dense" if layer < m["dense_layers"] else "grouped")  # fmt: skip
    return common


def reference_logprobs(w, family, ids, valid, block_size, routes=None) -> torch.Tensor:
    """log p over the vocabulary (T, V) at each position, shift applied: row i predicts token i."""
    allowed = block_causal(len(ids), valid, block_size)
    if family == "bd3lm":  # the mask column (the last) is never a prediction
        logits = dit(w, MDLM["heads"], ids, allowed)
        return torch.log_softmax(logits[:, :-1], -1)
    logits = decoder(w, reference_config(family), ids, allowed, routes)
    logprobs = torch.log_softmax(logits, -1)
    if FAMILY_CASES[family].shift:
        logprobs = torch.cat([logprobs[:1], logprobs[:-1]])
    return logprobs


def brute_force_nll(w, family, ids, start, length, block_size, mask_id) -> float:
    """Σ over blocks of the exact I-MDCE sum, every mask of each block enumerated on the reference:
    Σ_M 1/(|M|·C(L,|M|)) Σ_{i∈M} −log p(x_i | x with M masked, clean earlier blocks, later absent)."""
    total = 0.0
    positions = list(range(start, start + length))
    blocks = sorted({p // block_size for p in positions}) if block_size else [None]
    for block in blocks:
        span = [p for p in positions if block is None or p // block_size == block]
        end = len(ids) if block is None else min((block + 1) * block_size, len(ids))
        for count in range(1, len(span) + 1):
            for masked in combinations(span, count):
                row = list(ids[:end])
                for p in masked:
                    row[p] = mask_id
                logprobs = reference_logprobs(w, family, row, end, block_size)
                loss = -sum(float(logprobs[p, ids[p]]) for p in masked)
                total += loss / (count * math.comb(len(span), count))
    return total
