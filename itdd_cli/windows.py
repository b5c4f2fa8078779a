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
