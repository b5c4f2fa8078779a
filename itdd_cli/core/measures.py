"""Tokenizer-free measures of a scored text, comparable across tokenizers (LLaDA, Dream, MDLM).

Per-token NLL depends on how a tokenizer cuts the text; bits per byte and word-level perplexity
do not. Words are whitespace-separated, as lm-eval's wikitext task counts them. No torch.
"""

from __future__ import annotations

from typing import Any

from itdd_cli.core.settings import LN2


def text_measures(text: str, nll: float) -> dict[str, Any]:
    """The row fields `bytes` (UTF-8), `words` and `bits_per_byte` = nll / (ln 2 · bytes)."""
    size = len(text.encode("utf-8"))
    return {"bytes": size, "words": len(text.split()), "bits_per_byte": nll / (LN2 * size)}
