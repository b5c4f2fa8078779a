"""`itdd show A B`: the per-token difference of two --per-token result files on the same texts (two
models or checkpoints), B − A, as a Heat the terminal view and the HTML page draw like any other
(red where B spends more nats on a token, blue where fewer). No torch, no rich.

Rows pair by id and must split the text into the same tokens; anything else is refused in one line,
since a difference of shares of different tokens means nothing (compare such files on bits per byte
with `itdd compare`). A share's SE is √(SE_A² + SE_B²): exact for independent runs, and conservative
for runs that shared draws (same token ids and seed), whose errors move together.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from itdd_cli.errors import UsageError
from itdd_cli.views.heat import Heat, HeatRow, Scale, heat_rows, provenance


def _by_id(path: str, rows: list[tuple[int, HeatRow]]) -> dict[tuple[str, Any], HeatRow]:
    paired: dict[tuple[str, Any], HeatRow] = {}
    for _, row in rows:
        key = (type(row.id).__name__, row.id)
        if key in paired:
            raise UsageError(f"{path} holds id {row.id!r} twice (rows of several checkpoints?): split it by model "
                             "first, one file per model")  # fmt: skip
        paired[key] = row
    return paired


def _differ(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def _combined(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else math.hypot(a, b)


def _row(first: HeatRow, second: HeatRow, names: tuple[str, str]) -> HeatRow:
    if first.tokens != second.tokens:
        raise UsageError(f"row {first.id!r}: {names[0]} and {names[1]} split its text into different tokens "
                         f"({len(first.tokens)} and {len(second.tokens)}): a per-token difference needs the same "
                         "tokenizer and texts — compare such files on bits_per_byte with itdd compare")  # fmt: skip
    errors = None
    if first.errors is not None and second.errors is not None:
        errors = [math.hypot(a, b) for a, b in zip(first.errors, second.errors, strict=True)]
    nats = [b - a for a, b in zip(first.nats, second.nats, strict=True)]
    return HeatRow(first.id, second.nll - first.nll, _combined(first.nll_se, second.nll_se),
                   _differ(first.bits_per_byte, second.bits_per_byte), None, first.tokens, nats, errors)  # fmt: skip


def read_diff(path_a: str, path_b: str, ids: list[str] | None = None, limit: int | None = None) -> Heat:
    """B − A per token for the rows of A (in A's order) with the given ids; the scale is the largest
    |difference| over every paired row, so two views of one pair of files colour alike."""
    names = (Path(path_a).name, Path(path_b).name)
    first, second = _by_id(path_a, heat_rows(path_a)), _by_id(path_b, heat_rows(path_b))
    only = [row.id for key, row in first.items() if key not in second] or [
        row.id for key, row in second.items() if key not in first]  # fmt: skip
    if only:
        where = names[0] if any((type(i).__name__, i) in first for i in only[:1]) else names[1]
        raise UsageError(f"{names[0]} and {names[1]} hold different rows (id {only[0]!r} only in {where}): a diff "
                         "needs the same texts, scored under each model")  # fmt: skip
    every = [_row(row, second[key], names) for key, row in first.items()]
    chosen = every if ids is None else [row for row in every if str(row.id) in ids]
    if ids is not None:
        missing = [i for i in ids if i not in {str(row.id) for row in chosen}]
        if missing:
            raise UsageError(f"{names[0]} has no row with id {missing[0]!r}")
    top = max((abs(n) for row in every for n in row.nats if math.isfinite(n)), default=0.0)
    made = [f"{name}: {provenance(path) or 'unknown (no settings record)'}"
            for name, path in zip(names, (path_a, path_b), strict=True)]
    return Heat(f"{names[1]} − {names[0]}", chosen[:limit], len(every), Scale(top, signed=True), " | ".join(made),
                caption=f"Δ nats per token ({names[1]} − {names[0]}; red: more in {names[1]})",
                heading="Where the nats differ")
