"""--long rolling: a document longer than the model's window, scored in consecutive windows."""

from __future__ import annotations

import json

import pytest

from itdd_cli.core.windows import rolling_windows
from itdd_cli.errors import UsageError
from tests.support.cli import invoke, invoke_rows
from tests.support.jsonl import read_jsonl, write_jsonl

# The oracle checkpoint has no framing and a maximum length of 8: windows hold 8 tokens (characters).
DOCUMENT = "cadbabcdacbd"  # 12 characters: two windows



def _nll(oracle_dir, tmp_path, texts, *options):
    path = write_jsonl(tmp_path / "in.jsonl", [{"text": text} for text in texts])
    return invoke_rows(["nll", path, "-m", oracle_dir, "--trust-remote-code", *options])


@pytest.mark.parametrize("context", [0, 1, 3, 7])
def test_windows_score_every_token_once_in_order_after_their_context(context):
    ids = list(range(30))
    windows = rolling_windows(ids, 8, context)
    assert [token for window in windows for token in window.scored] == ids
    assert windows[0].context == [] and len(windows[0].scored) == 8
    start = 8
    for window in windows[1:]:
        assert window.context == ids[start - context : start]
        assert len(window.context) + len(window.scored) <= 8
        start += len(window.scored)


def test_a_context_that_leaves_no_room_is_a_usage_error():
    with pytest.raises(UsageError, match="--context 8 leaves no room"):
        rolling_windows(list(range(20)), 8, 8)


# (context, the windows as (context, scored) strings, cut by hand)
CUTS = {
    0: [("", "cadbabcd"), ("", "acbd")],
    3: [("", "cadbabcd"), ("bcd", "acbd")],
    6: [("", "cadbabcd"), ("dbabcd", "ac"), ("abcdac", "bd")],
}


@pytest.mark.parametrize("context", [0, 3, 6])
def test_rolling_exact_nll_is_the_sum_of_the_windows_exact_conditional_nlls(oracle_dir, distribution, tmp_path,
                                                                            context):  # fmt: skip
    (row,) = _nll(oracle_dir, tmp_path, [DOCUMENT], "--estimator", "exact", "--long", "rolling",
                  "--context", context)  # fmt: skip
    cuts = CUTS[context]
    assert "".join(scored for _, scored in cuts) == DOCUMENT
    truth = sum(distribution.cond_nll(prefix, scored) for prefix, scored in cuts)
    assert row["nll"] == pytest.approx(truth, abs=1e-5)
    assert (row["windows"], row["tokens"], row["nll_se"]) == (len(cuts), len(DOCUMENT), 0.0)


def test_rolling_monte_carlo_lands_within_four_standard_errors_of_the_window_sum(oracle_dir, distribution, tmp_path):
    summary = tmp_path / "summary.json"
    (row,) = _nll(oracle_dir, tmp_path, [DOCUMENT], "--long", "rolling", "--context", "3", "-n", "64", "--seed", "5",
                  "--summary", summary)  # fmt: skip
    assert json.loads(summary.read_text()) | {"long": "rolling", "context": 3} == json.loads(summary.read_text())
    truth = sum(distribution.cond_nll(prefix, scored) for prefix, scored in CUTS[3])
    assert row["windows"] == 2 and row["samples"] == 64 and row["nll_se"] > 0
    assert abs(row["nll"] - truth) <= 4 * row["nll_se"] + 1e-5
    assert json.loads(summary.read_text())["passes"] == 2 * 64  # every window's draws (was 64: one window's)


def test_a_document_that_fits_scores_identically_with_and_without_rolling(oracle_dir, tmp_path):
    texts = ["abcdabcd", "dcb", "a"]
    plain = _nll(oracle_dir, tmp_path, texts, "-n", "16", "--seed", "3")
    rolled = _nll(oracle_dir, tmp_path, texts, "-n", "16", "--seed", "3", "--long", "rolling", "--context", "4")
    assert rolled == plain
    assert all(row["windows"] == 1 for row in rolled)


def test_without_rolling_a_long_document_is_refused_with_the_way_out(oracle_dir, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"text": "ab"}, {"text": DOCUMENT}])
    result = invoke(["nll", path, "-m", oracle_dir, "--trust-remote-code", "-n", "8"])
    assert result.exit_code == 3
    assert "line 2" in result.stderr and "--long rolling" in result.stderr
    assert len(read_jsonl(result.stdout)) == 1  # the row before it is written


def test_conditional_commands_keep_refusing_what_does_not_fit(oracle_dir, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "abcdab", "response": "cdab"}])
    result = invoke(["cond-nll", path, "-m", oracle_dir, "--trust-remote-code", "-n", "8"])
    assert result.exit_code == 3 and "shorten or split" in result.stderr


def test_a_context_as_large_as_the_window_fails_before_scoring(oracle_dir, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"text": "ab"}])
    result = invoke(["nll", path, "-m", oracle_dir, "--trust-remote-code", "--long", "rolling", "--context", "8"])
    assert result.exit_code == 2 and "--context 8 leaves no room" in result.stderr


def test_resume_recognises_rolled_rows(oracle_dir, tmp_path):
    texts = [DOCUMENT, "abc", DOCUMENT[::-1]]
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": text} for text in texts])
    options = ["-m", oracle_dir, "--trust-remote-code", "-n", "8", "--long", "rolling"]
    full = invoke(["nll", source, *options])
    partial = tmp_path / "out.jsonl"
    assert invoke(["nll", source, *options, "-o", partial]).exit_code == 0  # writes the settings record too
    partial.write_text(full.stdout.splitlines()[0] + "\n", encoding="utf-8")  # cut after the rolled row
    resumed = invoke(["nll", source, *options, "-o", partial, "--resume"])
    assert resumed.exit_code == 0, resumed.stderr
    assert read_jsonl(partial.read_text()) == read_jsonl(full.stdout)
