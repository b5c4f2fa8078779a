"""Bounded batch shapes: a run of any size and length mix meets few distinct (rows, width) shapes.

A GPU pays for every new shape (cuDNN builds an attention plan per shape, compilers trace one),
so the engine pads a batch's width up to a rung of a ladder (2^k and 1.5·2^k: at most a third
of a row is padding) and its row count to a small set: a batch cut under the token budget is
full (its rows fill the budget at its width), and the one partial batch of a window is padded
with rows that score nothing — to the full count in a window that filled up, to a power of two
in the last, short window. Padding is masked out of attention, so a real row's numbers change
only by float rounding. Imports no torch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

WIDTH_FLOOR = 8  # the narrowest rung


class Sized(Protocol):
    width: int
    concatenated: bool


def rung(width: int, ceiling: int | None = None) -> int:
    """The smallest ladder width ≥ `width` (8, 12, 16, 24, 32, 48, …), never past `ceiling` (a
    model's position limit) unless the row itself is wider."""
    if width <= WIDTH_FLOOR:
        padded = WIDTH_FLOOR
    else:
        power = 1 << (width - 1).bit_length()  # the power of two ≥ width
        padded = power * 3 // 4 if power * 3 // 4 >= width else power
    return max(width, min(padded, ceiling)) if ceiling is not None else padded


def power_of_two_at_least(count: int) -> int:
    return 1 << max(0, count - 1).bit_length()


def plan(rows: Sequence[Sized], capacity: Callable[[int], int], *, bounded: bool, pads: bool, full_window: bool,
         ceiling: int | None = None) -> Iterator[tuple[list[int], tuple[int, int]]]:  # fmt: skip
    """Cut `rows` (sorted widest first) into batches: (indices into `rows`, (rows, width) shape);
    `capacity(width)` is how many rows a batch of that width holds.

    Unbounded (or a model without attention masks, `pads` False) gives the exact shapes:
    the widest row's width and the rows that fit. A batch never mixes layouts, and without
    attention masks never mixes lengths. Read lazily, so a budget shrunk after an
    out-of-memory error applies to the batches that follow.
    """
    bounded = bounded and pads
    batch: list[int] = []
    width = 0
    for index, row in enumerate(rows):
        if batch:
            first = rows[batch[0]]
            cut = (not pads and row.width != first.width) or row.concatenated != first.concatenated
            if cut or len(batch) + 1 > capacity(width):
                yield batch, _shape(len(batch), width, capacity(width), bounded, full_window and not cut)
                batch = []
        if not batch:
            # [noisy ‖ clean] rows carry their own position ids: padding them reaches no position limit
            width = rung(row.width, None if row.concatenated else ceiling) if bounded else row.width
        batch.append(index)
    if batch:
        yield batch, _shape(len(batch), width, capacity(width), bounded, full_window)


def _shape(count: int, width: int, capacity: int, bounded: bool, full_window: bool) -> tuple[int, int]:
    if not bounded:
        return count, width
    return max(count, capacity if full_window else min(capacity, power_of_two_at_least(count))), width
