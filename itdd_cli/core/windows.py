"""Long documents: `--long rolling` splits a token sequence into consecutive windows that fit.

As lm-eval's rolling log-likelihood does for autoregressive models: the first window scores the
first `capacity` tokens; each later window scores the next `capacity − context` tokens,
conditioned on the `context` tokens just before them (never masked, never scored). Every token is
scored exactly once, so the document's NLL is the sum of the windows' conditional NLLs.
Pure list arithmetic: no torch, no tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from itdd_cli.errors import UsageError


class Long(StrEnum):
    """What to do with a document longer than the model's window."""

    error = "error"  # refuse it (exit 3), naming the record: the row's NLL is always the whole joint
    rolling = "rolling"  # score it in windows, each conditioned on up to --context earlier tokens


@dataclass(frozen=True)
class Window:
    context: list[int]  # preceding tokens, never masked, never scored
    scored: list[int]


def check_context(capacity: int, context: int, name: str = "--context") -> None:
    """A window must keep room for at least one scored token after its context (`name`: the caller's word)."""
    if context < 0:
        raise UsageError(f"{name} {context}: expected a number of tokens ≥ 0")
    if context >= capacity:
        raise UsageError(
            f"{name} {context} leaves no room to score: the model's window holds {capacity} tokens "
            f"after framing; choose {name} below {capacity}"
        )


def rolling_windows(ids: list[int], capacity: int, context: int) -> list[Window]:
    """Consecutive windows over `ids`, each holding at most `capacity` tokens (context included)."""
    check_context(capacity, context)
    windows = [Window([], ids[:capacity])]
    start = capacity
    while start < len(ids):
        stop = start + capacity - context
        windows.append(Window(ids[start - context : start], ids[start:stop]))
        start = stop
    return windows


@dataclass(frozen=True)
class Grid:
    """Where a block model's framing puts text: blocks of `block` positions from framed position 0; a text
    framed alone starts at `lone_start`, one framed after context at `context_start` + its context's length;
    `suffix` framing tokens follow; `limit` framed positions fit."""

    block: int
    lone_start: int
    context_start: int
    suffix: int
    limit: int


def block_windows(ids: list[int], grid: Grid, context: int) -> list[Window]:
    """--long rolling for a block model: windows whose scored tokens are whole blocks of the text framed
    alone, each framed so that its blocks fall on its own grid as they fell on the whole text's. A block
    is then scored as in the whole text, conditioned on fewer earlier tokens. A later window's context is
    `context` tokens moved down to the grid (up, by less than a block, where nothing below fits)."""
    windows: list[Window] = []
    start = 0
    while start < len(ids):
        if start == 0:
            kept, first = 0, grid.lone_start
        else:
            kept = _aligned_context(start, grid, context)
            first = grid.context_start + kept if kept else grid.lone_start
        room = grid.limit - grid.suffix - first
        stop = start + room
        if stop < len(ids):  # end on the whole text's block grid
            stop -= (grid.lone_start + stop) % grid.block
        if stop <= start:
            raise UsageError(f"--long rolling: a window of {grid.limit} positions cannot hold a block of "
                             f"{grid.block} after {kept} tokens of context; lower --context")  # fmt: skip
        windows.append(Window(ids[start - kept : start], ids[start:stop]))
        start = stop
    return windows


def _aligned_context(start: int, grid: Grid, context: int) -> int:
    """Context tokens before `start` (a block boundary) that put `start` on the window's grid."""
    residue = (grid.lone_start + start - grid.context_start) % grid.block  # kept ≡ residue (mod block)
    candidates = [kept for kept in range(residue, start + 1, grid.block)
                  if kept or grid.lone_start % grid.block == (grid.lone_start + start) % grid.block]  # fmt: skip
    if not candidates:
        raise UsageError(f"--long rolling: no context puts the window's blocks on the grid of {grid.block}")
    below = [kept for kept in candidates if kept <= context]
    return max(below) if below else min(candidates)
