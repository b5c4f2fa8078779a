"""What `itdd show` shows: the rows of a --per-token result file, the colour scale both views
share, and each row's worst tokens. The terminal view (heat_view) and the HTML page (heat_html)
render this; neither reads files nor decides colours. No torch, no rich.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from itdd_cli.errors import UsageError
from itdd_cli.results.reader import read_results
from itdd_cli.results.rows import TOKEN_FIELDS, unguided
from itdd_cli.results.runrecord import record_path

STRINGS, NATS, ERRORS = (field.name for field in TOKEN_FIELDS)
TERMINAL_ROWS = 20  # rows the terminal shows unless --limit or --id says otherwise

# Sequential scale for a token's nats, 0 → the file's largest share (white, yellow, orange, red),
# and a blue tint for the negative shares a Monte Carlo split can give a nearly free token.
HOT = ((0.0, (255, 255, 255)), (0.25, (255, 237, 160)), (0.5, (254, 178, 76)), (0.75, (240, 59, 32)),
       (1.0, (165, 15, 21)))  # fmt: skip
COLD = (255, 255, 255), (107, 174, 214)
DARK_FROM = 0.6  # from this share of the scale on, text is white on the dark red


@dataclass(frozen=True)
class HeatRow:
    id: str | int
    nll: float
    nll_se: float | None
    bits_per_byte: float | None
    model: str | None  # a row of a several-checkpoint run
    tokens: list[str]
    nats: list[float]
    errors: list[float] | None = None  # each share's SE (files written before itdd carried it have none)
    label: str = "nll"  # "guided nll" for a --cfg file: a guided score, not a log-likelihood

    def worst(self, count: int) -> list[tuple[int, str, float]]:
        """The `count` tokens with the most nats, most first: (index, text, nats)."""
        order = sorted(range(len(self.nats)), key=lambda i: -self.nats[i])[:count]
        return [(i, self.tokens[i], self.nats[i]) for i in order]


@dataclass(frozen=True)
class Heat:
    path: str
    rows: list[HeatRow]
    total_rows: int  # in the file, before --id / --limit
    scale: Scale
    provenance: str | None = None  # model, estimator, draws and itdd version, from the file's settings record
    caption: str = "nats per token"  # the legend's words (a diff says what it subtracts)
    heading: str = "Where the nats go"


def provenance(path: str) -> str | None:
    """What made the file, from `PATH.meta.json` (written beside every -o file): None where there is
    none or it cannot be read (a page is still worth drawing; nothing here is guessed)."""
    try:
        record = json.loads(Path(record_path(path)).read_text(encoding="utf-8"))
        settings = record["settings"]
        said = [f"model {settings['model']}", f"estimator {settings['estimator']}", f"{settings['samples']} draws",
                f"seed {settings['seed']}", f"itdd {settings['tool_version']}"]  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return " · ".join(said)


@dataclass(frozen=True)
class Scale:
    top: float  # nats at the hot end: the largest share of any token in the file
    signed: bool = False  # a difference: the legend runs from −top (blue) to +top (red)

    def share(self, nats: float) -> float:
        return min(abs(nats) / self.top, 1.0) if self.top > 0 else 0.0

    def colour(self, nats: float) -> str:
        """Background as #rrggbb."""
        share = self.share(nats)
        if nats < 0:
            return _hex(_mix(COLD[0], COLD[1], share))
        for (low, a), (high, b) in zip(HOT, HOT[1:], strict=False):
            if share <= high:
                return _hex(_mix(a, b, (share - low) / (high - low)))
        return _hex(HOT[-1][1])

    def ink(self, nats: float) -> str:
        """Text colour readable on `colour(nats)`."""
        return "#ffffff" if nats > 0 and self.share(nats) >= DARK_FROM else "#000000"

    def legend(self, steps: int = 5) -> list[tuple[float, str]]:
        """(nats, colour) from 0 (−top for a difference) to the top of the scale."""
        low = -self.top if self.signed else 0.0
        values = [low + (self.top - low) * i / (steps - 1) for i in range(steps)]
        return [(value, self.colour(value)) for value in values]


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, ...]:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b, strict=True))


def _hex(rgb: tuple[int, ...]) -> str:
    return "#" + "".join(f"{channel:02x}" for channel in rgb)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _heat_row(path: str, number: int, row: dict[str, Any]) -> HeatRow:
    label = "guided nll" if "guided_nll" in row else "nll"
    row = unguided(row)  # a --cfg file: its guided shares drawn as a plain file's, labelled as guided
    tokens, nats = row.get(STRINGS), row.get(NATS)
    where = f"{path}: row {number} (id {row['id']!r})"
    if tokens is None or nats is None:
        raise UsageError(f"{where} has no per-token fields ({STRINGS}, {NATS}) — score with --per-token "
                         "(itdd nll … --per-token -o FILE.jsonl)")  # fmt: skip
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise UsageError(f"{where}: {STRINGS} is not a list of strings")
    values = [_number(n) for n in nats] if isinstance(nats, list) else None
    if values is None or None in values or len(values) != len(tokens):
        raise UsageError(f"{where}: {NATS} is not a list of {len(tokens)} numbers, one per token")
    nll = _number(row.get("nll"))
    if nll is None:
        raise UsageError(f"{where} has no 'nll': itdd show reads nll and cond-nll results")
    model = row.get("model")
    shares = [float(v) for v in values if v is not None]
    errors = row.get(ERRORS)
    ses = [_number(e) for e in errors] if isinstance(errors, list) and len(errors) == len(tokens) else None
    return HeatRow(row["id"], nll, _number(row.get("nll_se")), _number(row.get("bits_per_byte")),
                   model if isinstance(model, str) else None, tokens, shares,
                   None if ses is None or None in ses else [float(e) for e in ses if e is not None], label)  # fmt: skip


def heat_rows(path: str) -> list[tuple[int, HeatRow]]:
    """Every row of the file as (row number, HeatRow), checked."""
    rows = read_results(path)
    if not rows:
        raise UsageError(f"{path} has no rows to show")
    return [(number, _heat_row(path, number, row)) for number, row in enumerate(rows, start=1)]


def read_heat(path: str, ids: list[str] | None = None, limit: int | None = None) -> Heat:
    """The rows to show (those with the given ids, in file order; at most `limit`), and their scale."""
    rows = read_results(path)
    if not rows:
        raise UsageError(f"{path} has no rows to show")
    chosen = [(number, row) for number, row in enumerate(rows, start=1) if ids is None or str(row["id"]) in ids]
    if ids is not None:
        missing = [i for i in ids if i not in {str(row["id"]) for _, row in chosen}]
        if missing:
            raise UsageError(f"{path} has no row with id {missing[0]!r}")
    shown = [_heat_row(path, number, row) for number, row in chosen[:limit]]
    return Heat(path, shown, len(rows), Scale(_file_top(rows, shown)), provenance(path))


def _file_top(rows: list[dict[str, Any]], shown: list[HeatRow]) -> float:
    """The largest |share| of any token in the file, not only of the rows shown: two views of one file
    (`--id a`, `--id b`) colour the same nats alike. Rows not shown are read leniently (they are not
    validated, only their finite numbers counted)."""
    top = max((abs(n) for row in shown for n in row.nats if math.isfinite(n)), default=0.0)
    for row in rows:
        nats = row.get(NATS)
        if isinstance(nats, list):
            top = max([top, *(abs(v) for v in map(_number, nats) if v is not None and math.isfinite(v))])
    return top
