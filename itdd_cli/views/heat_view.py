"""`itdd show` in the terminal: each row's text with every token's background coloured by its
nats (the scale of heat.py), a legend, and the tokens with the most nats listed with their values.
Adjacent tokens of one colour are told apart by underlining every other one of the run.
Output stays bounded: at most `TERMINAL_ROWS` rows (heat.py) unless asked, `MAX_TOKENS` tokens a
row and `TEXT_LIMIT` characters a token; the HTML page shows everything. Every text from the file
reaches the terminal through `visible`: no escape sequence or bidi control in it acts.
"""

from __future__ import annotations

import math

from rich.console import Console
from rich.style import Style
from rich.text import Text

from itdd_cli.views.heat import Heat, HeatRow, Scale
from itdd_cli.views.visible import cut, visible

MAX_TOKENS = 2000  # tokens of one row printed; the rest is counted


def _legend(scale: Scale, caption: str) -> Text:
    legend = Text()
    legend.append(f"{visible(caption)}  ", style="dim")  # dim the caption only, not the swatches
    for nats, colour in scale.legend():
        legend.append(f" {nats:.2f} ", style=Style(bgcolor=colour, color=scale.ink(nats)))
    return legend


def _number(value: float | None, digits: int = 3) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _header(row: HeatRow) -> Text:
    header = Text(visible(str(row.id)), style="bold")
    if row.model:
        header.append(f"  {visible(row.model)}", style="cyan")
    se = f" ± {_number(row.nll_se)}" if row.nll_se is not None else ""
    header.append(f"  {row.label} {_number(row.nll)}{se} nats · {len(row.tokens)} tokens · "
                  f"{_number(row.bits_per_byte, 4)} bits/byte")  # fmt: skip
    return header


def _body(row: HeatRow, scale: Scale) -> Text:
    body = Text()
    previous, underlined = None, False
    for text, nats in list(zip(row.tokens, row.nats, strict=True))[:MAX_TOKENS]:
        head, more = cut(text)
        shown = visible(head, keep="\n\t").replace("\n", "↵\n") if text else "·"  # a newline or "" stays visible
        colour = scale.colour(nats)
        # a token the colour of the one before would merge with it: underline every other one of such a run
        underlined = colour == previous and not underlined
        previous = colour
        body.append(shown, style=Style(bgcolor=colour, color=scale.ink(nats), underline=underlined))
        if more:
            body.append(more, style="dim")
    if len(row.tokens) > MAX_TOKENS:
        body.append(f" … {len(row.tokens) - MAX_TOKENS} more tokens (--html shows every token)", style="dim")
    return body


def quoted(text: str) -> str:
    """A token as Python writes it (quoted, its controls escaped), cut to `TEXT_LIMIT` characters."""
    head, more = cut(text)
    return visible(repr(head)) + more


def print_heat(console: Console, heat: Heat, worst: int) -> None:
    console.print(_legend(heat.scale, heat.caption))
    if heat.provenance:
        console.print(Text(f"made by: {visible(heat.provenance)}", style="dim"))
    for row in heat.rows:
        console.print()
        console.print(_header(row))
        console.print(_body(row, heat.scale))
        if worst:
            listed = " · ".join(f"{quoted(text)} {nats:.2f}" for _, text, nats in row.worst(worst))
            console.print(Text(f"most nats: {listed}", style="dim"))
    if len(heat.rows) < heat.total_rows:
        console.print()
        console.print(Text(f"showing {len(heat.rows)} of {heat.total_rows} rows of {visible(heat.path)}: --limit N "
                           "or --id ID for others, --html OUT.html for a page of every row", style="dim"))  # fmt: skip
