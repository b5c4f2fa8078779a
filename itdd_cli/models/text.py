"""Text into token ids, as text: what a record says is never read as a tokenizer's control token.

A tokenizer normally turns the string "<|mdm_mask|>" into the mask id, so a record that merely
mentions it would be scored with a mask in its input. Here a record's text is tokenized with
special-token splitting on (the string becomes ordinary tokens); only a chat template's own
markup is read with its special tokens. `lost_characters` says which characters of a text the
tokenizer drops or maps to its unknown token, so that no character is scored silently as absent.
This module knows tokenizers, not models or records.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import unicodedata
from typing import Any

SENTINEL = "ITDDPROMPTSENTINEL7F3A"  # stands for the user's prompt while a chat template is rendered
SHOWN = 24  # lost characters quoted in a warning
DIFF_LIMIT = 20_000  # characters: longer texts count unknown tokens instead of naming characters
DECODE_CONTEXT = 4  # tokens decoded before a token to give it its leading space or joiner


def encode_text(tokenizer: Any, text: str) -> list[int]:
    """Token ids of `text` alone: no added BOS/EOS, and special-token strings read as plain text."""
    return list(tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])


def encode_markup(tokenizer: Any, text: str) -> list[int]:
    """Token ids of template markup, whose special-token strings are meant as control tokens."""
    return list(tokenizer(text, add_special_tokens=False, split_special_tokens=False)["input_ids"])


def added_strings(tokenizer: Any) -> list[str]:
    """The strings the tokenizer would match as whole added tokens (special or not)."""
    decoder = getattr(tokenizer, "added_tokens_decoder", None) or {}
    return [str(getattr(token, "content", token)) for token in decoder.values()]


def encode_chat_prompt(tokenizer: Any, prompt: str) -> list[int] | None:
    """`prompt` as a user turn of the chat template; None when the template rewrites a prompt that
    holds an added-token string (the prompt cannot then be kept apart from the markup)."""

    def render(content: str) -> str:
        messages = [{"role": "user", "content": content}]
        rendered: str = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return rendered

    text = render(prompt)
    if not any(token and token in prompt for token in added_strings(tokenizer)):
        return encode_markup(tokenizer, text)
    before, found, after = render(SENTINEL).partition(SENTINEL)
    if not found or SENTINEL in after or before + prompt + after != text:
        return None
    return encode_markup(tokenizer, before) + encode_text(tokenizer, prompt) + encode_markup(tokenizer, after)


def unknown_ids(tokenizer: Any, extra: tuple[int, ...] = ()) -> set[int]:
    """Ids that plain text can only reach by falling back: the unknown token, every special token
    (text never spells one once splitting is on) and `extra` (the model's mask id)."""
    ids = {int(i) for i in getattr(tokenizer, "all_special_ids", []) or []}
    ids |= {int(i) for i in extra}
    if getattr(tokenizer, "unk_token_id", None) is not None:
        ids.add(int(tokenizer.unk_token_id))
    backend = getattr(tokenizer, "backend_tokenizer", None)
    fallback = getattr(getattr(backend, "model", None), "unk_token", None)  # WordLevel/BPE unk, unregistered
    if fallback:
        token_id = backend.token_to_id(fallback)
        if token_id is not None:
            ids.add(int(token_id))
    return ids


def lost_text(tokenizer: Any, text: str, unknown: set[int]) -> str | None:
    """What of `text` gets no token or an unknown/special one; None when the tokenizer represents
    every character but whitespace. The known tokens are decoded and compared with the text (both
    NFKC-normalised, casefolded, without whitespace), so a character the tokenizer drops is named
    itself: character offsets shift after a dropped one and would name its neighbours."""
    ids = encode_text(tokenizer, text)
    known = [token_id for token_id in ids if token_id not in unknown]
    try:
        decoded = str(tokenizer.decode(known, skip_special_tokens=False, clean_up_tokenization_spaces=False))
    except (NotImplementedError, ValueError, TypeError, KeyError, OverflowError):
        decoded = None
    original = _comparable(text)
    if decoded is None or len(original) > DIFF_LIMIT:  # no decoder, or too long to diff cheaply
        count = len(ids) - len(known)
        return f"{count} token(s) are the tokenizer's unknown token" if count else None
    matcher = difflib.SequenceMatcher(None, original, _comparable(decoded), autojunk=False)
    gone = "".join(original[i1:i2] for tag, i1, i2, _, _ in matcher.get_opcodes() if tag in ("delete", "replace"))
    characters = "".join(dict.fromkeys(gone))  # in order, without repeats
    if not characters:
        return None
    shown = characters if len(characters) <= SHOWN else characters[:SHOWN] + "…"
    return f"the tokenizer has no token for {shown!r} (scored as if absent or unknown)"


def _comparable(text: str) -> str:
    return "".join(unicodedata.normalize("NFKC", text).split()).casefold()


def token_pieces(tokenizer: Any, text: str, ids: list[int]) -> list[str]:
    """The piece of `text` each of its token ids covers, so that the pieces concatenate to `text`.

    From the tokenizer's character offsets when it gives them for exactly these ids: a token runs
    from the previous token's end to its own, so a space the offsets leave out (or a character the
    tokenizer dropped) goes with the token after it, and of the tokens that share one character (a
    byte-level piece splitting a UTF-8 character) the last carries it and the others are "", never U+FFFD.
    Otherwise by incremental decoding (`decoded_pieces`), which a lossy decoder may not invert."""
    try:
        encoded = tokenizer(text, add_special_tokens=False, split_special_tokens=True, return_offsets_mapping=True)
        offsets = [(int(start), int(end)) for start, end in encoded["offset_mapping"]]
        same = list(encoded["input_ids"]) == list(ids)
    except (NotImplementedError, ValueError, TypeError, KeyError):  # slow tokenizers give no offsets
        same = False
    if not same:
        return decoded_pieces(tokenizer, ids)
    pieces, done = [], 0
    for i, (start, end) in enumerate(offsets):
        if i + 1 < len(offsets) and offsets[i + 1] == (start, end) and start < end:
            pieces.append("")  # part of a character the next token finishes
            continue
        end = max(end, done)
        pieces.append(text[done:end])
        done = end
    if pieces:
        pieces[-1] += text[done:]  # trailing characters no token claimed
    return pieces


def decoded_pieces(tokenizer: Any, ids: list[int]) -> list[str]:
    """Each token's text by decoding a short run of tokens before it with and without it (as vLLM's
    incremental detokenizer does, so a decoder's first-token rules do not change a token's text); a
    token ending inside a UTF-8 character gets "" and the token completing the character carries it."""

    def decode(part: list[int]) -> str:
        return str(tokenizer.decode(part, skip_special_tokens=False, clean_up_tokenization_spaces=False))

    pieces: list[str] = []
    start, read = 0, 0  # decode from `start`; the text up to `read` has been handed out
    for i in range(len(ids)):
        before, now = decode(ids[start:read]), decode(ids[start : i + 1])
        if now.endswith("\ufffd") and i + 1 < len(ids):
            pieces.append("")  # an incomplete character: wait for the tokens that finish it
            continue
        pieces.append(now[len(before) :] if now.startswith(before) else now)
        start, read = max(read - DECODE_CONTEXT, 0), i + 1
    return pieces


def tokenizer_fingerprint(tokenizer: Any) -> str | None:
    """A hash of everything that turns text into ids: the fast tokenizer's whole definition
    (vocabulary, merges, normalizer, pre-tokenizer) or its vocabulary, and its special tokens."""
    if tokenizer is None:
        return None
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        definition = backend.to_str()
    elif hasattr(tokenizer, "get_vocab"):
        definition = json.dumps(sorted(tokenizer.get_vocab().items()))
    else:
        return None
    special = json.dumps(getattr(tokenizer, "special_tokens_map", {}), sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(f"{definition}\0{special}".encode()).hexdigest()[:32]
