"""A right-padded batch of texts as the engine hands it to a model: ids with the chosen positions
masked, the attention mask, the score mask and the targets."""

from __future__ import annotations

from collections.abc import Callable

import torch


def masked_batch(model, texts: list[str], choose: Callable[[int], torch.Tensor]):
    """`choose(length)`: which of a text's `length` scored positions to mask (bool), called row by row."""
    framed = [model.frame([], model.encode(text)) for text in texts]
    width = max(len(f.ids) for f in framed)
    ids = torch.full((len(texts), width), model.info.pad_id)
    attention = torch.zeros_like(ids)
    score = torch.zeros_like(ids, dtype=torch.bool)
    for row, f in enumerate(framed):
        ids[row, : len(f.ids)] = torch.tensor(f.ids)
        attention[row, : len(f.ids)] = 1
        score[row, f.start : f.start + f.length] = choose(f.length)
    targets = ids.clone()
    ids[score] = model.info.mask_id
    return framed, ids, attention, score, targets


def about_half(seed: int, first: bool = False) -> Callable[[int], torch.Tensor]:
    """Each position masked with chance ½ (from one generator across rows); `first`: the first always."""
    generator = torch.Generator().manual_seed(seed)

    def choose(length: int) -> torch.Tensor:
        chosen = torch.rand(length, generator=generator) < 0.5
        chosen[0] |= first
        return chosen

    return choose
