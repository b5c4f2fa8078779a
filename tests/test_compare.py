"""`itdd compare`: the paired difference of two result files, gated with --fail-if-worse."""

from __future__ import annotations

import json

from tests.conftest import invoke


def _results(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_compare_reports_the_paired_difference_and_fails_only_when_significantly_worse(tmp_path):
    base_rows = [{"id": i, "nll_per_token": 2.0 + 0.1 * (i % 3)} for i in range(20)]
    same = _results(tmp_path / "same.jsonl", [r | {"nll_per_token": r["nll_per_token"] + 0.001 * (-1) ** i}
                                              for i, r in enumerate(base_rows)])  # fmt: skip
    worse = _results(tmp_path / "worse.jsonl", [r | {"nll_per_token": r["nll_per_token"] + 0.2 + 0.01 * (i % 2)}
                                                for i, r in enumerate(base_rows)])  # fmt: skip
    better = _results(tmp_path / "better.jsonl", [r | {"nll_per_token": r["nll_per_token"] - 0.2 - 0.01 * (i % 2)}
                                                  for i, r in enumerate(base_rows)])  # fmt: skip
    base = _results(tmp_path / "base.jsonl", base_rows)
    result = invoke(["compare", base, same, "--fail-if-worse"])
    assert result.exit_code == 0 and "no significant difference" in result.stdout
    result = invoke(["compare", base, worse, "--fail-if-worse"])
    assert result.exit_code == 4 and "significantly worse" in result.stdout
    assert "+0.205" in result.stdout
    assert invoke(["compare", base, worse]).exit_code == 0  # reported, not gated
    assert invoke(["compare", base, better, "--fail-if-worse"]).exit_code == 0


def test_compare_on_ratio_files_treats_a_lower_log_ratio_as_worse(tmp_path):
    base = _results(tmp_path / "b.jsonl", [{"id": i, "log_ratio": 1.0 + (i % 2)} for i in range(10)])
    new = _results(tmp_path / "n.jsonl", [{"id": i, "log_ratio": 0.5 + (i % 2) + 0.01 * i} for i in range(12)])
    result = invoke(["compare", base, new, "--fail-if-worse"])
    assert result.exit_code == 4 and "log_ratio" in result.stdout and "2 only in new" in result.stdout


def test_compare_usage_errors(tmp_path):
    base = _results(tmp_path / "b.jsonl", [{"id": 1, "nll_per_token": 1.0}])
    assert invoke(["compare", base, tmp_path / "missing.jsonl"]).exit_code == 2
    assert invoke(["compare", base, base, "--metric", "tokens"]).exit_code == 2
    other = _results(tmp_path / "o.jsonl", [{"id": 2, "nll_per_token": 1.0}])
    assert invoke(["compare", base, other]).exit_code == 2
