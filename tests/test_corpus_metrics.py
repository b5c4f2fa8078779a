"""Tokenizer-free metrics: bytes, words and bits per byte in every nll / cond-nll row and the summary."""

from __future__ import annotations

import json
import math

import pytest

from tests.support.cli import invoke, one_error_line
from tests.support.jsonl import read_jsonl, write_jsonl

LN2 = math.log(2)
# Counted by hand: 'é', 'ö', 'ï' are two UTF-8 bytes each; words are split on any whitespace.
TEXTS = [("héllo wörld", 13, 2), ("naïve  café\tau lait", 21, 4), ("a", 1, 1)]



def test_each_row_reports_utf8_bytes_words_and_bits_per_byte(tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"text": text} for text, _, _ in TEXTS])
    summary = tmp_path / "summary.json"
    result = invoke(["nll", path, "-m", "demo", "-n", "8", "--summary", summary])
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(result.stdout)
    for row, (_, size, words) in zip(rows, TEXTS, strict=True):
        assert (row["bytes"], row["words"]) == (size, words)
        assert row["bits_per_byte"] == pytest.approx(row["nll"] / (LN2 * size), rel=1e-12)
    document = json.loads(summary.read_text())
    total_nll = sum(row["nll"] for row in rows)
    assert document["bytes"] == sum(size for _, size, _ in TEXTS)
    assert document["words"] == sum(words for _, _, words in TEXTS)
    assert document["bits_per_byte"] == pytest.approx(total_nll / (LN2 * document["bytes"]), rel=1e-9)
    assert document["word_perplexity"] == pytest.approx(math.exp(total_nll / document["words"]), rel=1e-9)
    assert "bits/byte" in result.stderr and "word perplexity" in result.stderr


def test_cond_nll_measures_the_response_only(oracle_dir, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "abcd", "response": "dc"}])
    result = invoke(["cond-nll", path, "-m", oracle_dir, "--trust-remote-code", "--estimator", "exact"])
    assert result.exit_code == 0, result.stderr
    (row,) = read_jsonl(result.stdout)
    assert (row["bytes"], row["words"]) == (2, 1)
    assert row["bits_per_byte"] == pytest.approx(row["nll"] / (2 * LN2), rel=1e-12)


def test_a_gate_can_test_corpus_bits_per_byte(oracle_dir, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"text": "abca"}, {"text": "dd"}])
    base = ["nll", path, "-m", oracle_dir, "--trust-remote-code", "-n", "8"]
    assert invoke([*base, "--fail-above", "bits_per_byte=100"]).exit_code == 0
    failed = invoke([*base, "--fail-above", "bits_per_byte=0.001"])
    assert failed.exit_code == 4 and "bits_per_byte" in failed.stderr


def test_ratio_does_not_report_bits_per_byte_and_a_gate_on_it_says_so(oracle_dir, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"chosen": "ab", "rejected": "cd"}])
    result = invoke(["ratio", path, "-m", oracle_dir, "--trust-remote-code", "-n", "8",
                     "--fail-above", "bits_per_byte=1"])  # fmt: skip
    one_error_line(result, 2, "bits_per_byte is not a metric ratio reports")  # before scoring: no hours spent
