"""`itdd compare`: the paired difference of two result files, gated with --fail-if-worse."""

from __future__ import annotations

import json

from tests.support.cli import invoke


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


def test_compare_names_the_ids_found_in_only_one_file_as_written(tmp_path):
    base = _results(tmp_path / "b.jsonl", [{"id": i, "nll_per_token": 2.0 + 0.1 * (i % 3)} for i in range(12)])
    new_rows = [{"id": i, "nll_per_token": 2.0 + 0.1 * (i % 2)} for i in range(3)]
    new_rows += [{"id": "1", "nll_per_token": 2.0}, {"id": "z", "nll_per_token": 2.0}]
    new = _results(tmp_path / "n.jsonl", new_rows)
    result = invoke(["compare", base, new])
    assert result.exit_code == 0, result.stderr
    assert "over 3 paired records (9 only in base: 3, 4, 5, 6, 7 and 4 more; 2 only in new: '1', 'z')" in result.stdout


def _with_se(rows, nll_se):
    return [row | {"nll_se": nll_se, "tokens": 10} for row in rows]


def test_compare_with_every_pair_differing_by_the_same_amount_is_judged_by_the_rows_standard_errors(tmp_path):
    rows = [{"id": i, "nll_per_token": 2.0 + 0.37 * i} for i in range(4)]
    base = _results(tmp_path / "b.jsonl", _with_se(rows, 1.0))
    # per row nll_se / tokens = 0.1 on each side: SE of the mean difference = sqrt(4 · 2 · 0.01) / 4
    se = (4 * 2 * 0.01) ** 0.5 / 4
    for shift, exit_code in ((0.1, 0), (0.3, 4)):  # t = 1.41 (not significant), t = 4.24 (worse)
        shifted = [row | {"nll_per_token": row["nll_per_token"] + shift} for row in rows]
        new = _results(tmp_path / f"n{shift}.jsonl", _with_se(shifted, 1.0))
        result = invoke(["compare", base, new, "--fail-if-worse"])
        assert result.exit_code == exit_code, result.stdout
        assert f"every pair differs by exactly {shift:+g}" in result.stdout
        assert f"± {se:.3g} (t = {shift / se:+.2f}" in result.stdout
        assert "normal, from the rows' own SEs" in result.stdout
        assert "inf" not in result.stdout and "nan" not in result.stdout


def test_compare_with_no_spread_and_no_row_errors_is_not_judged_or_exact(tmp_path):
    rows = [{"id": i, "nll_per_token": 2.0 + 0.37 * i} for i in range(4)]
    shifted = [row | {"nll_per_token": row["nll_per_token"] + 0.1} for row in rows]
    bare = invoke(["compare", _results(tmp_path / "b.jsonl", rows), _results(tmp_path / "n.jsonl", shifted),
                   "--fail-if-worse"])  # fmt: skip
    assert bare.exit_code == 0 and "not judged: every pair differs by exactly +0.1" in bare.stdout
    exact_base = _results(tmp_path / "eb.jsonl", _with_se(rows, 0.0))  # an exact estimator's rows: no Monte Carlo error
    exact_new = _results(tmp_path / "en.jsonl", _with_se(shifted, 0.0))
    worse = invoke(["compare", exact_base, exact_new, "--fail-if-worse"])
    assert worse.exit_code == 4 and "significantly worse (exact" in worse.stdout
    better = invoke(["compare", exact_new, exact_base, "--fail-if-worse"])
    assert better.exit_code == 0 and "significantly better (exact" in better.stdout
    for result in (bare, worse, better):
        assert "inf" not in result.stdout and "nan" not in result.stdout and "t = " not in result.stdout


def test_the_new_compare_lines_fit_a_narrow_terminal_without_splitting_a_word(tmp_path):
    import io

    from rich.console import Console

    from itdd_cli.results.compare import compare_files
    from itdd_cli.views.reporting import print_comparison

    rows = [{"id": f"record-{i:03d}", "nll_per_token": 2.0 + 0.37 * i, "nll_se": 0.0, "tokens": 10} for i in range(9)]
    base = _results(tmp_path / "b.jsonl", rows)
    new = _results(tmp_path / "n.jsonl", [row | {"nll_per_token": row["nll_per_token"] + 0.1} for row in rows[:2]]
                   + [{"id": i, "nll_per_token": 1.0} for i in range(7)])  # fmt: skip
    comparison = compare_files(str(base), str(new), None)
    assert comparison.uniform and comparison.exact and (comparison.only_base, comparison.only_new) == (7, 7)

    def render(terminal):
        buffer = io.StringIO()
        print_comparison(Console(file=buffer, width=60, color_system=None, soft_wrap=True, force_terminal=terminal),
                         comparison)  # fmt: skip
        return buffer.getvalue()

    narrow = render(True)
    assert all(len(line) <= 60 for line in narrow.splitlines()), narrow
    assert narrow.split() == render(False).split()
    assert "'record-002', 'record-003', 'record-004', 'record-005', 'record-006' and 2 more;" in render(False)
    assert "7 only in new: 0, 1, 2, 3, 4 and 2 more)" in render(False)


def test_an_se_of_zero_counts_as_exact_only_on_rows_that_enumerated_every_masked_set(tmp_path):
    """Older files hold Monte Carlo rows of 3 tokens at -n 8 with an SE of 0 on a wrong number."""
    rows = [{"id": i, "nll_per_token": 2.0 + 0.37 * i, "nll_se": 0.0, "tokens": 3} for i in range(4)]
    shifted = [row | {"nll_per_token": row["nll_per_token"] + 0.1} for row in rows]
    for samples, exit_code, words in ((8, 0, "not judged"), (7, 4, "significantly worse (exact")):
        base = _results(tmp_path / f"b{samples}.jsonl", [row | {"samples": samples} for row in rows])
        new = _results(tmp_path / f"n{samples}.jsonl", [row | {"samples": samples} for row in shifted])
        result = invoke(["compare", base, new, "--fail-if-worse"])
        assert result.exit_code == exit_code and words in result.stdout, result.stdout
