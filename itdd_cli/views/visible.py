"""Text from a file, a record or a name made safe for a terminal: every C0/C1 control character
(an escape sequence can clear the screen, retitle the window or forge a colour) and every bidi
control (which reorders what is shown: "txt.exe" can read as "exe.txt") is written as a visible
escape, `\\x1b` or `\\u202e`. Every line itdd prints that holds such text goes through `visible`;
the HTML page escapes with `html` instead and isolates each token's direction. Also the cap on
how much of one token the terminal view prints. No rich, no torch.
"""

from __future__ import annotations

# Bidi embeddings, overrides and isolates (U+202A–202E, U+2066–2069), the marks U+200E/U+200F
# and the Arabic letter mark U+061C.
BIDI = (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C)
_CONTROLS = (*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0))
_ESCAPES = {code: f"\\x{code:02x}" for code in _CONTROLS} | {code: f"\\u{code:04x}" for code in BIDI}
_TABLES: dict[str, dict[int, str]] = {}

TEXT_LIMIT = 200  # characters of one token `itdd show` prints; the rest is counted


def visible(text: str, keep: str = "") -> str:
    """`text` with every control and bidi character but those in `keep` (a view may keep "\\n")
    written as its escape."""
    table = _TABLES.get(keep)
    if table is None:
        table = _TABLES[keep] = {code: escape for code, escape in _ESCAPES.items() if chr(code) not in keep}
    return text.translate(table)


def cut(text: str, limit: int = TEXT_LIMIT) -> tuple[str, str]:
    """The first `limit` characters of `text`, and the mark that counts the rest (`…[+999,800 chars]`,
    or "" when nothing was cut)."""
    return (text, "") if len(text) <= limit else (text[:limit], f"…[+{len(text) - limit:,} chars]")

