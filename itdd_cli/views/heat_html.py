"""`itdd show --html`: one self-contained page per result file (inline CSS and JS, no network, no
external fonts). Every token is a span coloured by its nats with the value in its title (hover);
a search box (or `#q=word` in the address) marks the tokens that spell a match and hides rows
without one. Everything from the file is escaped (a token "<script>" is text) and each token, id
and listed token has its own text direction (a U+202E in one reorders nothing else). No rich, no torch.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

from itdd_cli.results.outfile import prepare_target
from itdd_cli.views.heat import Heat, HeatRow, Scale

WORST = 5  # tokens listed under each row's header
NEWLINE = '<i class="nl"></i>'  # a visible ↵ where a token holds a line break

STYLE = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #111; background: #fafafa; }
header { position: sticky; top: 0; background: #fff; border-bottom: 1px solid #ddd; padding: 10px 20px; z-index: 1; }
h1 { font-size: 17px; margin: 0 0 6px; font-weight: 600; }
#shown { font-weight: 400; color: #666; }
.from { font-size: 12px; color: #555; margin: -2px 0 6px; }
.bar { display: flex; flex-wrap: wrap; gap: 18px; align-items: center; }
.legend { display: flex; align-items: center; gap: 0; font-size: 12px; }
.legend span.sw { display: inline-block; width: 56px; padding: 2px 0; text-align: center; border: 1px solid #ccc; }
.legend .cap { margin-right: 8px; color: #555; }
input[type=search] { font: inherit; padding: 4px 8px; width: 260px; border: 1px solid #bbb; border-radius: 4px; }
#count { font-size: 13px; color: #555; }
main { padding: 8px 20px 40px; }
section.row { background: #fff; border: 1px solid #e2e2e2; border-radius: 6px; margin: 12px 0; padding: 10px 14px; }
section.row.nohit { display: none; }
.head { font-size: 13px; color: #333; margin-bottom: 6px; }
.head b { font-size: 14px; }
.head .m { margin-right: 14px; }
.worst { font-size: 12px; color: #555; margin-top: 6px; }
.worst code { background: #f2f2f2; padding: 0 3px; border-radius: 3px; }
bdi, .worst code { unicode-bidi: isolate; }
.text { font: 15px/1.9 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; white-space: pre-wrap;
        word-break: break-word; }
.t { border-radius: 2px; box-shadow: inset -1px 0 0 rgba(255, 255, 255, .8); unicode-bidi: isolate; }
.t:hover { outline: 1px solid #333; }
.nl::before { content: "\\21b5"; opacity: .55; }
.t.e::before { content: "\\00b7"; color: #888; }
.t.hit { outline: 2px solid #1565c0; outline-offset: 0; box-shadow: 0 0 0 3px rgba(21, 101, 192, .25); }
"""

# Marks every token overlapping a match of the query in its row's text (so a word split over
# several tokens is found); reads the query from the box or from `#q=…` in the address.
SCRIPT = """
(function () {
  var box = document.getElementById("q"), count = document.getElementById("count");
  var rows = Array.prototype.slice.call(document.querySelectorAll("section.row"));
  function search(query) {
    var needle = query.toLowerCase(), tokens = 0, found = 0;
    rows.forEach(function (row) {
      var spans = row.querySelectorAll(".text .t"), hay = "", starts = [], ends = [];
      for (var i = 0; i < spans.length; i++) {  // lower-cased token by token: "İ" becomes 2 characters
        starts.push(hay.length); hay += spans[i].textContent.toLowerCase(); ends.push(hay.length);
      }
      var marks = new Array(spans.length), any = false;
      if (needle) {
        for (var at = hay.indexOf(needle); at >= 0; at = hay.indexOf(needle, at + 1)) {
          for (var j = 0; j < spans.length; j++) {
            if (starts[j] < at + needle.length && ends[j] > at) { marks[j] = true; any = true; }
          }
        }
      }
      for (var k = 0; k < spans.length; k++) {
        spans[k].classList.toggle("hit", !!marks[k]);
        if (marks[k]) { tokens++; }
      }
      row.classList.toggle("nohit", !!needle && !any);
      if (any) { found++; }
    });
    count.textContent = needle ? tokens + " tokens in " + found + " of " + rows.length + " rows match" : "";
  }
  function fromHash() {
    var match = /[#&]q=([^&]*)/.exec(location.hash);
    var query = match ? match[1].replace(/\\+/g, " ") : "";
    try { query = decodeURIComponent(query); } catch (malformed) { /* "#q=%E0": search the text as written */ }
    box.value = query;
    search(query);
  }
  box.addEventListener("input", function () {
    try {  // a lone surrogate cannot be encoded: the search still runs, the address stays
      history.replaceState(null, "", box.value ? "#q=" + encodeURIComponent(box.value) : location.pathname);
    } catch (unencodable) { /* keep the address */ }
    search(box.value);
  });
  window.addEventListener("hashchange", fromHash);
  fromHash();
})();
"""


def _number(value: float | None, digits: int = 3) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def _token(index: int, text: str, nats: float, scale: Scale, se: float | None = None) -> str:
    kind = "t e" if text == "" else "t"
    error = "" if se is None else f" ± {se:.4f}"
    title = html.escape(f"{nats:.4f}{error} nats · token {index + 1} · {text!r}", quote=True)
    style = f"background:{scale.colour(nats)};color:{scale.ink(nats)}"
    shown = html.escape(text).replace("\n", NEWLINE + "\n")  # the mark adds nothing to the text (search)
    return f'<span class="{kind}" style="{style}" title="{title}" data-nats="{nats!r}">{shown}</span>'


def _row(row: HeatRow, scale: Scale) -> str:
    parts = [f'<b class="m"><bdi>{html.escape(str(row.id))}</bdi></b>']
    if row.model:
        parts.append(f'<span class="m">model <bdi>{html.escape(row.model)}</bdi></span>')
    se = f" ± {_number(row.nll_se)}" if row.nll_se is not None else ""
    parts.append(f'<span class="m">{row.label} {_number(row.nll)}{html.escape(se)} nats</span>')
    parts.append(f'<span class="m">{len(row.tokens)} tokens</span>')
    parts.append(f'<span class="m">{_number(row.bits_per_byte, 4)} bits/byte</span>')
    worst = " · ".join(
        f"<code>{html.escape(repr(text))}</code> {nats:.2f}" for _, text, nats in row.worst(WORST)
    )
    errors = row.errors or [None] * len(row.tokens)
    tokens = "".join(_token(i, text, nats, scale, se)
                     for i, (text, nats, se) in enumerate(zip(row.tokens, row.nats, errors, strict=True)))  # fmt: skip
    return (f'<section class="row" data-id="{html.escape(str(row.id), quote=True)}">'
            f'<div class="head">{"".join(parts)}</div><div class="text">{tokens}</div>'
            f'<div class="worst">most nats: {worst}</div></section>')  # fmt: skip


def _provenance(heat: Heat) -> str:
    if heat.provenance is None:
        return f"made by: unknown (no settings record {html.escape(Path(heat.path).name)}.meta.json beside the file)"
    return f"made by: <bdi>{html.escape(heat.provenance)}</bdi>"


def page(heat: Heat) -> str:
    """The whole page as text."""
    name = html.escape(Path(heat.path).name)
    legend = "".join(
        f'<span class="sw" style="background:{colour};color:{heat.scale.ink(nats)}">{nats:.2f}</span>'
        for nats, colour in heat.scale.legend()
    )
    shown = f"{heat.total_rows} rows"
    if len(heat.rows) < heat.total_rows:
        shown = f"{len(heat.rows)} of {shown}"
    rows = "\n".join(_row(row, heat.scale) for row in heat.rows)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>itdd show — {name}</title><style>{STYLE}</style></head>
<body><header><h1>{heat.heading} — <bdi>{name}</bdi> <span id="shown">({shown})</span></h1>
<div class="from">{_provenance(heat)}</div>
<div class="bar"><div class="legend"><span class="cap">{html.escape(heat.caption)}</span>{legend}</div>
<input type="search" id="q" placeholder="search the text…" aria-label="search the text">
<span id="count"></span></div></header>
<main>
{rows}
</main><script>{SCRIPT}</script></body></html>
"""


def write_page(heat: Heat, out: str, overwrite: bool, source: str | None = None) -> None:
    """Written beside `out` and renamed over it when whole (never over an existing file without
    `overwrite`, never over the result file `source` itself)."""
    target = prepare_target(out, source or heat.path, overwrite, resume=False)
    try:
        target.open().write(page(heat))
        target.commit()
    finally:
        target.close()
