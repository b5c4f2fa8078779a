"""A row's per-token fields (--per-token): the scored tokens' text, each one's share of the NLL and its SE.

The shares come from the same draws as the row's NLL (the tallies split every value over its
positions, see `estimators.positions`), so they cost no forward pass and sum to `nll`. A text
scored in rolling windows or in blocks gets its windows' or blocks' shares in token order.
This module knows the model's tokenizer contract (`token_strings`), not files or rendering.
"""

from __future__ import annotations

from typing import Any

import torch

from itdd_cli.errors import UsageError
from itdd_cli.models.base import Framed, ScoringModel
from itdd_cli.results.rows import SPECS, Command


def check_per_token(command: Command, option: str = "--per-token") -> None:
    """Only commands that score one text per row split it per token (`option`: the caller's name for it)."""
    if not SPECS[command].per_token:
        raise UsageError(f"{option} is for nll and cond-nll, not {command.value}: a {command.value} row compares "
                         f"several texts — score each with cond-nll {option} to see its tokens")  # fmt: skip


def per_token_values(
    model: ScoringModel, text: str, framed: list[Framed], shares: list[torch.Tensor], errors: list[torch.Tensor]
) -> dict[str, Any]:
    """`framed`: the text's windows (or its one framed sequence); `shares`: their per-token shares (L,),
    `errors`: each share's standard error (L,)."""
    ids = [token for f in framed for token in f.ids[f.start : f.start + f.length]]
    contributions, ses = torch.cat(shares).tolist(), torch.cat(errors).tolist()
    strings = model.token_strings(text, ids)
    if not len(ids) == len(contributions) == len(strings) == len(ses):
        raise AssertionError(f"{len(ids)} scored tokens, {len(contributions)} shares, {len(strings)} strings")
    return {"token_strings": strings, "token_nll": contributions, "token_nll_se": ses}
