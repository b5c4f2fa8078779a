"""A record's text is scored as the text it is: a special-token string in it is never read as
the token it names, and characters the tokenizer cannot represent are never lost in silence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from itdd_cli.models import LoadOptions, load_model
from tests.support.cli import invoke
from tests.support.family_checkpoints import LETTERS, LLADA, char_tokenizer, write_llada
from tests.support.jsonl import read_jsonl, write_jsonl

MASK = "<|mdm_mask|>"
PUNCTUATION = "<|>_"  # enough to spell every special token of the tiny LLaDA as plain characters
SPECIALS = {"<|startoftext|>": 40, "<|endoftext|>": 41, MASK: LLADA["mask"]}


@pytest.fixture(scope="module")
def spelled(tmp_path_factory):
    """A tiny LLaDA whose character tokenizer also knows '<', '|', '>' and '_': (directory, vocab)."""
    directory = write_llada(tmp_path_factory.mktemp("spelled") / "llada")
    vocab = char_tokenizer(directory, SPECIALS, 51, letters=LETTERS + PUNCTUATION, bos_token="<|startoftext|>",
                           eos_token="<|endoftext|>", pad_token="<|endoftext|>")  # fmt: skip
    return directory, vocab


def test_a_mask_token_string_in_text_is_tokenized_character_by_character(spelled):
    directory, vocab = spelled
    model = load_model(LoadOptions(str(directory)))
    text = f"a {MASK} b <|endoftext|>"
    assert model.encode(text) == [vocab[char] for char in text]
    assert model.info.mask_id not in model.encode(text)


@pytest.mark.parametrize("command", ["nll", "cond-nll"])
def test_the_cli_scores_a_special_token_string_as_its_characters(spelled, tmp_path, command):
    directory, _ = spelled
    text = f"x {MASK} y"
    row = {"text": text} if command == "nll" else {"prompt": text, "response": text}
    path = write_jsonl(tmp_path / "in.jsonl", [row])
    result = invoke([command, str(path), "-m", str(directory), "-n", "8", "-q"])
    assert result.exit_code == 0, result.stderr
    out = read_jsonl(result.stdout)[0]
    assert out["tokens"] == len(text)  # 16 characters, where the mask string used to be one token
    if command == "cond-nll":
        assert out["prompt_tokens"] == len(text)
    assert "lost" not in result.stderr and "no token" not in result.stderr


def test_a_chat_template_keeps_its_own_markup_special_but_the_prompt_plain(spelled, tmp_path):
    source, vocab = spelled
    directory = tmp_path / "chat"
    directory.mkdir()
    for path in source.iterdir():
        (directory / path.name).write_bytes(path.read_bytes())
    config_path = directory / "tokenizer_config.json"
    template = "{{ bos_token }}{% for m in messages %}user {{ m['content'] }}.{% endfor %}<|endoftext|>"
    config_path.write_text(json.dumps(json.loads(config_path.read_text()) | {"chat_template": template}))
    model = load_model(LoadOptions(str(directory)))
    prompt = f"say {MASK}"
    expected = [SPECIALS["<|startoftext|>"], *(vocab[c] for c in f"user {prompt}."), SPECIALS["<|endoftext|>"]]
    assert model.encode_chat_prompt(prompt) == expected
    assert model.encode_chat_prompt("say hi") == [40, *(vocab[c] for c in "user say hi."), 41]


def _nll(tmp_path, rows, *args):  # type: ignore[no-untyped-def]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    return invoke(["nll", str(path), "-n", "8", *args])


def test_characters_the_tokenizer_drops_are_warned_per_record_and_counted(tmp_path):
    rows = [{"id": "jp", "text": "hello 日本語"}, {"id": "en", "text": "hello there"}]
    summary = tmp_path / "summary.json"
    result = _nll(tmp_path, rows, "-m", "demo", "-q", "--summary", str(summary))
    assert result.exit_code == 0, result.stderr
    assert len(read_jsonl(result.stdout)) == 2
    warnings = [line for line in result.stderr.splitlines() if "no token for" in line]
    assert len(warnings) == 1 and warnings[0].startswith("itdd: line 1: text:") and "'日本語'" in warnings[0]
    assert json.loads(summary.read_text())["lossy"] == 1


def test_a_dropped_newline_or_tab_is_not_reported_as_another_character(tmp_path):
    rows = [{"text": "hello\nthere"}, {"text": "a\tb c"}, {"text": "hello\n日本語 there"}, {"text": "zero\u200bwidth"}]
    result = _nll(tmp_path, rows, "-m", "demo", "-q")
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "no token for" in line]
    assert len(warnings) == 2 and warnings[0].startswith("itdd: line 3:") and "'日本語'" in warnings[0]
    assert warnings[1].startswith("itdd: line 4:") and "no token for '\\u200b'" in warnings[1]


def test_a_closing_summary_counts_the_records_with_lost_characters(tmp_path):
    result = _nll(tmp_path, [{"text": "hello 日本語"}], "-m", "demo")
    assert result.exit_code == 0, result.stderr
    assert "1 with characters lost in tokenization" in result.stderr


def test_a_resumed_run_still_counts_the_lossy_records_scored_before_the_cut(tmp_path):
    rows = [{"id": "jp", "text": "hello 日本語"}, {"id": "en", "text": "hello there"}, {"id": "x", "text": "one more"}]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    out, summary = tmp_path / "out.jsonl", tmp_path / "summary.json"
    common = ["nll", str(source), "-n", "8", "-m", "demo", "-q", "-o", str(out)]
    assert invoke(common).exit_code == 0
    assert json.loads(Path(f"{out}.meta.json").read_text())["lossy_lines"] == [1]
    out.write_text(out.read_text().splitlines(keepends=True)[0])  # cut after the lossy record
    resumed = invoke([*common, "--resume", "--summary", str(summary)])
    assert resumed.exit_code == 0, resumed.stderr
    assert json.loads(summary.read_text())["lossy"] == 1 and json.loads(summary.read_text())["records"] == 3


def test_strict_refuses_a_record_with_lost_characters_naming_its_line(tmp_path):
    rows = [{"text": "hello there"}, {"text": "hello 日本語"}]
    result = _nll(tmp_path, rows, "-m", "demo", "-q", "--strict")
    assert result.exit_code == 3
    assert "line 2:" in result.stderr and "日本語" in result.stderr and "--strict" in result.stderr
    assert len(read_jsonl(result.stdout)) == 1  # the record before it is written


def test_strict_with_skip_invalid_skips_the_record_and_scores_the_rest(tmp_path):
    rows = [{"text": "hello 日本語"}, {"text": "hello there"}]
    result = _nll(tmp_path, rows, "-m", "demo", "-q", "--strict", "--skip-invalid")
    assert result.exit_code == 0, result.stderr
    assert [row["id"] for row in read_jsonl(result.stdout)] == [2]
    assert "skipped line 1" in result.stderr


def test_text_mapped_to_the_unknown_token_is_warned_and_dna_is_not(tmp_path):
    """dna8 knows A, C, G and T only: everything else became its <|endoftext|> fallback, so
    "hello!!!" and any other 8 characters scored alike."""
    result = _nll(tmp_path, [{"text": "ACGTACGT"}, {"text": "hello!!!"}], "-m", "dna8", "-q")
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "no token for" in line]
    assert len(warnings) == 1 and "line 2:" in warnings[0] and "'helo!'" in warnings[0]


def test_ratio_names_the_side_that_lost_characters(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "say", "chosen": "hello", "rejected": "hello 日本語"}])
    result = invoke(["ratio", str(path), "-m", "demo", "-n", "8", "-q"])
    assert result.exit_code == 0, result.stderr
    assert "rejected: the tokenizer has no token for '日本語'" in result.stderr
    assert "chosen:" not in result.stderr and "prompt:" not in result.stderr
