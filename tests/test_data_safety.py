"""Never a silent wrong number, never lost data: the output file, --resume, ids, CSV cells,
gates and compare, as a careless user or an attacker meets them (issue #11, and #12's
input/output cases). Files are compared byte for byte before and after."""

from __future__ import annotations

import fcntl
import json
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from itdd_cli.estimators.tdist import critical, two_sided_p
from itdd_cli.scoring import engine
from tests.support.cli import invoke, one_error_line
from tests.support.jsonl import read_jsonl, write_jsonl

ROOT = Path(__file__).resolve().parents[1]
DEMO = ["-m", "demo", "--device", "cpu", "-q"]


def itdd(*args, **kwargs):
    env = os.environ | {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "itdd_cli", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=600, **kwargs)  # fmt: skip


@pytest.fixture
def base(oracle_dir):
    return ["-m", oracle_dir, "--trust-remote-code", "-n", "8", "-q"]


@pytest.fixture
def source(tmp_path):
    return write_jsonl(tmp_path / "in.jsonl", [{"id": f"r{i}", "text": t} for i, t in enumerate(["ab", "cd", "abc"])])


# 1. the input is never destroyed


@pytest.mark.parametrize("how", ["same", "symlink", "hardlink", "resume"])
def test_an_output_that_is_the_input_is_refused_and_the_input_kept(base, source, tmp_path, how):
    before = source.read_bytes()
    target, extra = source, ["--overwrite"]
    if how == "symlink":
        target = tmp_path / "link.jsonl"
        target.symlink_to(source)
    elif how == "hardlink":
        target = tmp_path / "hard.jsonl"
        os.link(source, target)
    elif how == "resume":
        extra = ["--resume"]
    one_error_line(invoke(["nll", source, *base, "-o", target, *extra]), 2, "is the input file")
    assert source.read_bytes() == before


@pytest.mark.parametrize("which", ["input", "output", "new output", "settings record"])
def test_a_summary_that_is_the_input_or_the_output_is_refused(base, source, tmp_path, which):
    out = tmp_path / "out.jsonl"
    if which == "output":
        out.write_bytes(b"old\n")
    summary = {"input": source, "settings record": Path(f"{out}.meta.json")}.get(which, out)
    before = source.read_bytes()
    result = invoke(["nll", source, *base, "-o", out, "--overwrite", "--summary", summary])
    one_error_line(result, 2, f"is the {which.replace('new ', '')} file")
    assert source.read_bytes() == before and (which != "output" or out.read_bytes() == b"old\n")


def test_overwriting_a_symlink_replaces_its_target_and_keeps_the_link(base, source, tmp_path):
    real, link = tmp_path / "real.jsonl", tmp_path / "link.jsonl"
    real.write_bytes(b"old\n")
    link.symlink_to(real)
    assert invoke(["nll", source, *base, "-o", link, "--overwrite"]).exit_code == 0
    assert link.is_symlink() and len(read_jsonl(real.read_text())) == 3


@pytest.mark.slow
def test_dev_stdout_is_standard_output_also_when_it_is_a_file(oracle_dir, source, tmp_path):
    out = tmp_path / "redirected.jsonl"
    env = os.environ | {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    args = ["nll", source, "-m", oracle_dir, "--trust-remote-code", "-n", "8", "-q", "-o", "/dev/stdout"]
    with out.open("w") as stdout:
        result = subprocess.run([sys.executable, "-m", "itdd_cli", *map(str, args)], env=env, stdout=stdout,
                                stderr=subprocess.PIPE, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(read_jsonl(out.read_text())) == 3 and not Path(f"{out}.meta.json").exists()


# 2. nothing is touched before scoring


def test_errors_before_scoring_leave_an_existing_output_untouched(base, source, tmp_path):
    keep = tmp_path / "keep.jsonl"
    keep.write_bytes(b'{"precious": true}\n')
    one_error_line(invoke(["nll", tmp_path / "typo.jsnol", *base, "-o", keep, "--overwrite"]), 2, "no such file")
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"text": "ab"\n')
    one_error_line(invoke(["nll", bad, *base, "-o", keep, "--overwrite"]), 3, "line 1")
    one_error_line(invoke(["nll", source, *base, "-o", keep, "--overwrite", "--fail-above", "x=1"]), 2, "x=1")
    assert keep.read_bytes() == b'{"precious": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "in.jsonl", "keep.jsonl"]  # no litter
    fresh = tmp_path / "fresh.jsonl"
    one_error_line(invoke(["nll", tmp_path / "missing.jsonl", *base, "-o", fresh]), 2, "no such file")
    assert not fresh.exists()  # no empty file blocking the next run


def test_an_existing_output_is_refused_before_the_model_loads(source, tmp_path):
    keep = tmp_path / "keep.jsonl"
    keep.write_bytes(b"x\n")
    refused = invoke(["nll", source, "-m", tmp_path / "no-such-model", "-o", keep])  # loading would exit 1
    one_error_line(refused, 2, "exists; pass --overwrite")


def test_overwrite_replaces_the_file_only_once_rows_come(base, source, tmp_path):
    keep = tmp_path / "keep.jsonl"
    keep.write_bytes(b"old\n")
    assert invoke(["nll", source, *base, "-o", keep, "--overwrite"]).exit_code == 0
    assert [row["id"] for row in read_jsonl(keep.read_text())] == ["r0", "r1", "r2"]
    assert keep.stat().st_mode & 0o777 == 0o666 & ~_umask()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


@pytest.mark.parametrize("where,words", [("missing/s.json", "does not exist"), ("dir", "is a directory")])
def test_a_summary_that_cannot_be_written_is_refused_before_scoring(base, source, tmp_path, where, words):
    (tmp_path / "dir").mkdir()
    result = invoke(["nll", source, *base, "-o", tmp_path / "o.jsonl", "--summary", tmp_path / where])
    one_error_line(result, 2, words)
    assert not (tmp_path / "o.jsonl").exists()


# 3 and 19. the settings record: a resume never mixes settings, and knows the skipped lines


@pytest.mark.parametrize("change,named", [(["-n", "16"], "samples 8 → 16"), (["--seed", "3"], "seed 0 → 3"),
                                          (["--estimator", "time-free"], "estimator 'control-variate' → 'time-free'"),
                                          (["--text-field", "t2"], "fields")])  # fmt: skip
def test_a_resume_with_other_settings_is_refused_naming_the_difference(base, tmp_path, change, named):
    rows = [{"id": f"r{i}", "text": t, "t2": t} for i, t in enumerate(["ab", "cd", "abc"])]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    assert invoke(["nll", source, *base, "-o", out]).exit_code == 0
    out.write_text(out.read_text().splitlines()[0] + "\n")
    before = out.read_bytes()
    refused = invoke(["nll", source, *base, *change, "-o", out, "--resume"])
    one_error_line(refused, 2, named)
    assert out.read_bytes() == before


def test_a_resume_with_an_edited_tokenizer_is_refused(tmp_path):
    import shutil

    model = tmp_path / "demo"
    shutil.copytree(ROOT / "itdd_cli" / "bundled" / "demo", model)
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "hello there"}, {"id": "b", "text": "one"}])
    out = tmp_path / "out.jsonl"
    common = ["nll", source, "-m", model, "-n", "8", "-q", "-o", out]
    assert invoke(common).exit_code == 0
    out.write_text(out.read_text().splitlines()[0] + "\n")
    definition = json.loads((model / "tokenizer.json").read_text())
    vocab = definition["model"]["vocab"]  # two letters swap ids: same token counts, other numbers
    vocab["e"], vocab["o"] = vocab["o"], vocab["e"]
    (model / "tokenizer.json").write_text(json.dumps(definition))
    one_error_line(invoke([*common, "--resume"]), 2, "tokenizer 'sha256:")


def test_a_resume_with_another_block_size_is_refused(tmp_path):
    from tests.support.block_checkpoints import write_sdar

    model = write_sdar(tmp_path / "sdar")
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "abcabcab"}, {"id": "b", "text": "cab"}])
    out = tmp_path / "out.jsonl"
    common = ["nll", source, "-m", model, "-n", "8", "-q", "-o", out]
    assert invoke(common).exit_code == 0
    out.write_text(out.read_text().splitlines()[0] + "\n")
    one_error_line(invoke([*common, "--resume", "--block-size", "2"]), 2, "block_size 4 → 2")


def test_a_resume_of_another_command_or_without_a_settings_record_is_refused(base, tmp_path):
    pairs = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "a", "response": "b", "text": "ab"}] * 1)
    out = tmp_path / "out.jsonl"
    assert invoke(["nll", pairs, *base, "-o", out]).exit_code == 0
    one_error_line(invoke(["cond-nll", pairs, *base, "-o", out, "--resume"]), 2, "command 'nll' → 'cond-nll'")
    Path(f"{out}.meta.json").unlink()
    one_error_line(invoke(["nll", pairs, *base, "-o", out, "--resume"]), 2, "settings that made it cannot be checked")
    no_model = ["-m", tmp_path / "no-such-model"]  # loading it would exit 1: the refusal comes first
    one_error_line(invoke(["nll", pairs, *no_model, "-o", out, "--resume"]), 2, "cannot be checked")


def test_a_signal_as_the_output_appears_waits_for_its_settings_record(base, source, tmp_path, monkeypatch):
    """The output is renamed into place at the first row and its settings record written next; a
    Ctrl-C arriving between the two would leave a file that --resume must refuse."""
    import signal

    from itdd_cli.results import outfile

    real_replace = os.replace

    def replace_then_interrupt(src, dst):
        real_replace(src, dst)
        if str(dst).endswith("out.jsonl"):
            os.kill(os.getpid(), signal.SIGINT)  # lands right after the output appears

    monkeypatch.setattr(outfile.os, "replace", replace_then_interrupt)
    out = tmp_path / "out.jsonl"
    interrupted = invoke(["nll", source, *base, "-o", out])
    assert interrupted.exit_code == 130 and "interrupted" in interrupted.stderr
    assert "(continue with --resume)" in interrupted.stderr
    assert out.exists() and Path(f"{out}.meta.json").exists()
    monkeypatch.undo()
    resumed = invoke(["nll", source, *base, "-o", out, "--resume"])
    assert resumed.exit_code == 0, resumed.stderr
    assert out.read_text() == invoke(["nll", source, *base]).stdout


def test_an_interrupt_before_the_first_row_says_nothing_was_written(base, source, tmp_path, monkeypatch):
    from itdd_cli.run import session

    def interrupted_at_once(*args, **kwargs):
        raise KeyboardInterrupt
        yield

    monkeypatch.setattr(session, "score", interrupted_at_once)
    out = tmp_path / "out.jsonl"
    result = invoke(["nll", source, *base, "-o", out])
    assert result.exit_code == 130 and "was not written" in result.stderr and "--resume" not in result.stderr
    assert not out.exists()


def test_skip_invalid_then_resume_knows_the_skipped_lines(base, tmp_path):
    texts = ["ab", "abcdabcdab", "cd", "", "abc", "d"]  # line 2 too long for the oracle, line 4 empty
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": f"s{i}", "text": t} for i, t in enumerate(texts)])
    full, part = tmp_path / "full.jsonl", tmp_path / "part.jsonl"
    assert invoke(["nll", source, *base, "--skip-invalid", "-o", full]).exit_code == 0
    assert json.loads(Path(f"{full}.meta.json").read_text())["skipped_lines"] == [2, 4]
    assert invoke(["nll", source, *base, "--skip-invalid", "-o", part]).exit_code == 0
    part.write_text("".join(full.read_text().splitlines(keepends=True)[:2]))  # cut after s2 (line 3)
    resumed = invoke(["nll", source, *base, "--skip-invalid", "-o", part, "--resume"])
    assert resumed.exit_code == 0, resumed.stderr
    assert part.read_bytes() == full.read_bytes()
    assert json.loads(Path(f"{part}.meta.json").read_text())["skipped_lines"] == [2, 4]


# 4. CSV resume: one header, and rows cut inside a quoted field


@pytest.mark.parametrize("cut", ["in-first-row", "in-quoted-field", "in-header"])
def test_a_csv_resume_writes_one_header_and_equals_an_uninterrupted_run(base, tmp_path, cut):
    records = [{"id": "r,0", "text": "ab"}, {"id": 'r\n"1"', "text": "cd"}, {"id": "r2", "text": "abc"}, {"text": "d"}]
    source = write_jsonl(tmp_path / "in.jsonl", records)
    full, part = tmp_path / "full.csv", tmp_path / "part.csv"
    assert invoke(["nll", source, *base, "-o", full]).exit_code == 0
    assert invoke(["nll", source, *base, "-o", part]).exit_code == 0
    data = full.read_bytes()
    header = data.index(b"\n") + 1
    at = {"in-first-row": header + 5, "in-quoted-field": data.index(b'r\n""1') + 2, "in-header": 5}[cut]
    part.write_bytes(data[:at])
    resumed = invoke(["nll", source, *base, "-o", part, "--resume"])
    assert resumed.exit_code == 0, resumed.stderr
    assert part.read_bytes() == data


# 5. one run per output


def test_a_second_run_on_a_locked_output_is_refused(base, source, tmp_path):
    out = tmp_path / "out.jsonl"
    with open(f"{out}.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        one_error_line(invoke(["nll", source, *base, "-o", out]), 2, "another itdd run is writing")
    assert not out.exists()
    assert invoke(["nll", source, *base, "-o", out]).exit_code == 0
    assert not Path(f"{out}.lock").exists()


@pytest.mark.parametrize("how", ["hardlink", "symlink"])
def test_a_run_through_another_name_of_a_busy_output_is_refused(base, source, tmp_path, how):
    out, other = tmp_path / "out.jsonl", tmp_path / "other.jsonl"
    assert invoke(["nll", source, *base, "-o", out]).exit_code == 0
    os.link(out, other) if how == "hardlink" else other.symlink_to(out)
    before = out.read_bytes()
    with open(out) as busy:  # what a run resuming `out` holds
        fcntl.flock(busy, fcntl.LOCK_EX)
        if how == "symlink":
            with open(f"{out}.lock", "w") as held:  # a symlink resolves to the same lock file
                fcntl.flock(held, fcntl.LOCK_EX)
                one_error_line(invoke(["nll", source, *base, "-o", other, "--resume"]), 2, "another itdd run")
        else:
            one_error_line(invoke(["nll", source, *base, "-o", other, "--resume"]), 2, "under another name")
    assert out.read_bytes() == before


def test_standard_input_redirected_from_the_output_is_refused(oracle_dir, source, tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_bytes(source.read_bytes())
    with out.open("rb") as stdin:
        result = itdd("nll", "-", "-m", oracle_dir, "--trust-remote-code", "-n", "8", "-q", "-o", out, "--overwrite",
                      stdin=stdin)  # fmt: skip
    assert result.returncode == 2 and "is the input file" in result.stderr, result.stderr
    assert out.read_bytes() == source.read_bytes()


@pytest.mark.slow
def test_two_concurrent_resumes_leave_no_duplicate_rows(oracle_dir, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": "abcd"[i % 4] * (1 + i % 3)} for i in range(600)])
    out = tmp_path / "out.jsonl"
    args = ["nll", source, "-m", oracle_dir, "--trust-remote-code", "-n", "8", "-q", "-o", out, "--resume"]
    env = os.environ | {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    runs = [subprocess.Popen([sys.executable, "-m", "itdd_cli", *map(str, args)], env=env, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]  # fmt: skip
    codes = sorted(run.wait(timeout=600) for run in runs)
    messages = "".join(run.stderr.read() for run in runs)
    rows = read_jsonl(out.read_text())
    assert [row["id"] for row in rows] == list(range(600))
    assert codes in ([0, 0], [0, 2]), messages  # the second refused, or started after the first finished
    if codes == [0, 2]:
        assert "another itdd run is writing" in messages


# 6. ids as written, and never a generated id colliding with an explicit one


def test_a_line_number_id_colliding_with_an_explicit_id_is_refused(base, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": 3, "text": "ab"}, {"text": "cd"}, {"text": "abc"}])
    one_error_line(invoke(["nll", source, *base]), 3, "line 3: this record has no 'id', and its line number 3")
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "ab"}, {"id": 1, "text": "cd"}])
    one_error_line(invoke(["nll", source, *base]), 3, "line 2: id 1 is also the line number of line 1")


def test_the_number_1_and_the_string_1_are_different_ids_everywhere(base, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": 1, "text": "ab"}, {"id": "1", "text": "cd"}])
    for suffix in (".jsonl", ".csv"):
        out = tmp_path / f"out{suffix}"
        assert invoke(["nll", source, *base, "-o", out]).exit_code == 0
        compared = invoke(["compare", out, out])
        assert compared.exit_code == 0 and "over 2 paired records" in compared.stdout, compared.stdout
    assert [row["id"] for row in read_jsonl((tmp_path / "out.jsonl").read_text())] == [1, "1"]
    assert (tmp_path / "out.csv").read_text().splitlines()[1:][1].startswith("'1,")


# 7. a resume is byte-identical: windows replayed from where an uninterrupted run starts them


@pytest.fixture
def small_windows(monkeypatch):
    monkeypatch.setattr(engine, "WINDOW_ROWS", 24)  # 3 records of 8 draws per window


TEXTS = ["the cat sat on the mat", "a", "hello world, this is a longer line of text", "to be", "x y z",
         "once upon a time there was", "ok", "numbers 12345"]  # fmt: skip


@pytest.mark.parametrize("cut_rows", [1, 4, 6])
def test_a_resume_after_any_cut_equals_the_uninterrupted_run_byte_for_byte(tmp_path, small_windows, cut_rows):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in TEXTS])
    full, part = tmp_path / "full.jsonl", tmp_path / "part.jsonl"
    assert invoke(["nll", source, *DEMO, "-n", "8", "-o", full]).exit_code == 0
    assert invoke(["nll", source, *DEMO, "-n", "8", "-o", part]).exit_code == 0
    lines = full.read_text().splitlines(keepends=True)
    part.write_text("".join(lines[:cut_rows]) + lines[cut_rows][:9])
    resumed = invoke(["nll", source, *DEMO, "-n", "8", "-o", part, "--resume"])
    assert resumed.exit_code == 0, resumed.stderr
    assert part.read_bytes() == full.read_bytes()


def test_a_resume_after_a_bad_line_is_fixed_equals_a_run_on_the_fixed_file(tmp_path, small_windows):
    broken = tmp_path / "in.jsonl"
    broken.write_text("".join(json.dumps({"text": t}) + "\n" if i != 4 else '{"text": oops}\n'
                              for i, t in enumerate(TEXTS)))  # fmt: skip
    part, full = tmp_path / "part.jsonl", tmp_path / "full.jsonl"
    stopped = invoke(["nll", broken, *DEMO, "-n", "8", "-o", part])
    assert stopped.exit_code == 3 and len(read_jsonl(part.read_text())) == 4
    fixed = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in TEXTS])
    assert invoke(["nll", fixed, *DEMO, "-n", "8", "-o", part, "--resume"]).exit_code == 0
    assert invoke(["nll", fixed, *DEMO, "-n", "8", "-o", full]).exit_code == 0
    assert part.read_bytes() == full.read_bytes()


def test_a_resume_with_another_batch_size_says_the_last_digits_may_differ(tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in TEXTS[:3]])
    out = tmp_path / "out.jsonl"
    assert invoke(["nll", source, *DEMO, "-n", "8", "-o", out]).exit_code == 0
    out.write_text(out.read_text().splitlines(keepends=True)[0])
    resumed = invoke(["nll", source, *DEMO, "-n", "8", "--batch-size", "3", "-o", out, "--resume"])
    assert resumed.exit_code == 0 and "--batch-size auto → 3" in resumed.stderr and "last digits" in resumed.stderr


# 11. compare: never NaN, exact Student t, a p-value


def test_student_t_quantiles_and_p_values_match_the_tables():
    table = {1: 12.706204736174707, 2: 4.302652729749464, 3: 3.182446305284263, 10: 2.228138851986274,
             30: 2.042272456301238, math.inf: 1.959963984540054}  # fmt: skip
    for df, quantile in table.items():
        assert critical(df) == pytest.approx(quantile, rel=1e-12)
        assert two_sided_p(quantile, df) == pytest.approx(0.05, rel=1e-10)
    assert two_sided_p(1.0, 1) == pytest.approx(0.5, rel=1e-12)  # Cauchy: P(|T| > 1) = 1/2
    assert two_sided_p(0.0, 7) == 1.0


def test_compare_with_one_paired_record_uses_the_rows_standard_errors(tmp_path):
    row = {"id": 1, "nll": 20.0, "nll_se": 1.0, "tokens": 10, "nll_per_token": 2.0, "bits_per_token": 2.885,
           "ppl": 7.389, "samples": 8}  # fmt: skip
    base = write_jsonl(tmp_path / "b.jsonl", [row])
    new = write_jsonl(tmp_path / "n.jsonl", [row | {"nll": 21.0, "nll_per_token": 2.1}])
    result = invoke(["compare", base, new, "--fail-if-worse"])
    se = math.hypot(0.1, 0.1)  # nll_se / tokens on each side
    assert result.exit_code == 0, result.stdout  # t = 0.707: not significant
    assert "nan" not in result.stdout and "inf" not in result.stdout
    assert f"± {se:.3g}" in result.stdout and f"p = {two_sided_p(0.1 / se, math.inf):.3g}" in result.stdout
    worse = write_jsonl(tmp_path / "w.jsonl", [row | {"nll": 40.0, "nll_per_token": 4.0}])
    assert invoke(["compare", base, worse, "--fail-if-worse"]).exit_code == 4
    bare = write_jsonl(tmp_path / "bare.jsonl", [{"id": 1, "nll_chosen": 3.0}])
    unjudged = invoke(["compare", bare, bare, "--metric", "nll_chosen", "--fail-if-worse"])
    assert unjudged.exit_code == 0 and "not judged" in unjudged.stdout and "nan" not in unjudged.stdout


# 12 and 15. gates that can fail, and an empty input without NaN


@pytest.mark.parametrize("limit", ["nan", "inf", "-inf"])
def test_a_gate_threshold_must_be_finite(base, source, limit):
    one_error_line(invoke(["nll", source, *base, "--fail-above", f"nll_per_token={limit}"]), 2, "finite")


@pytest.mark.parametrize("limit", ["1_0", "５", "", "0x10", "1,5"])
def test_a_gate_threshold_is_a_plain_number(base, source, limit):
    refused = invoke(["nll", source, *base, "--fail-above", f"nll_per_token={limit}"])
    one_error_line(refused, 2, "expected METRIC=NUMBER (e.g. nll_per_token=3.5)")


def test_an_empty_input_reports_zero_records_and_no_nan(oracle_dir, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    summary = tmp_path / "s.json"
    result = invoke(["nll", empty, "-m", oracle_dir, "--trust-remote-code", "-n", "8", "--summary", summary])
    assert result.exit_code == 0 and "records 0" in result.stderr and "nan" not in result.stderr.lower()
    document = json.loads(summary.read_text(), parse_constant=lambda name: pytest.fail(f"{name} in the summary"))
    assert document["records"] == 0 and document["nll_per_token"] is None
    gated = invoke(["nll", empty, "-m", oracle_dir, "--trust-remote-code", "-n", "8", "--fail-above",
                    "nll_per_token=5"])  # fmt: skip
    assert gated.exit_code == 4 and "no records were scored" in gated.stderr


# 13. the prompt/response boundary


def test_the_prompts_trailing_whitespace_belongs_to_the_response(tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [
        {"id": "a", "prompt": "Return the value of the ", "response": "attribute."},
        {"id": "b", "prompt": "Return the value of the", "response": " attribute."},
    ])  # fmt: skip
    rows = read_jsonl(invoke(["cond-nll", source, *DEMO, "-n", "8"]).stdout)
    # The same tokens and draws; the two rows sit at different places in one batch, and a CPU's
    # matmul kernels may round a row differently by its place, so floats agree to ~1e-7, not bit for bit.
    assert {k: pytest.approx(v, rel=1e-6) for k, v in rows[0].items() if k != "id"} == {
        k: v for k, v in rows[1].items() if k != "id"}
    literal = read_jsonl(invoke(["cond-nll", source, *DEMO, "-n", "8", "--keep-boundary"]).stdout)
    # (another run's batches hold other rows, so the same record agrees to float rounding)
    assert literal[1]["nll"] == pytest.approx(rows[1]["nll"], rel=1e-6) and literal[0]["nll"] != rows[0]["nll"]


# 16. CSV cells a spreadsheet would run


def test_csv_text_cells_are_protected_and_read_back_as_written(base, tmp_path):
    ids = ["=HYPERLINK(1)", "+1", "-x", "@SUM", "'q", "7", "plain"]
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": "ab"} for i in ids])
    out = tmp_path / "out.csv"
    assert invoke(["nll", source, *base, "-o", out]).exit_code == 0
    cells = [line.split(",")[0] for line in out.read_text().splitlines()[1:]]
    assert cells == ["'=HYPERLINK(1)", "'+1", "'-x", "'@SUM", "''q", "'7", "plain"]
    out.write_text("".join(out.read_text().splitlines(keepends=True)[:4]))
    assert invoke(["nll", source, *base, "-o", out, "--resume"]).exit_code == 0  # ids read back as written
    assert [line.split(",")[0] for line in out.read_text().splitlines()[1:]] == cells


def test_a_negative_number_in_a_csv_column_is_a_number_not_a_formula(base, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": -5, "chosen": "dcba", "rejected": "ab"}])
    out = tmp_path / "out.csv"
    assert invoke(["ratio", source, *base, "-o", out]).exit_code == 0
    row = out.read_text().splitlines()[1].split(",")
    assert row[0] == "-5" and float(row[1]) < 0 and not row[1].startswith("'")


# 17 and 18. runaway resources refused up front


def test_an_impossible_draw_count_is_refused_before_reading(base, source):
    args = [a for a in base if a not in ("-n", "8")]
    one_error_line(invoke(["nll", source, *args, "-n", "1000000000"]), 2, "--samples 1,000,000,000")
    no_model = ["-m", source.parent / "no-such-model"]  # loading it would exit 1: the refusal comes first
    one_error_line(invoke(["nll", source, *no_model, "-n", "1000000000"]), 2, "--samples 1,000,000,000")


def test_a_huge_line_is_refused_by_its_length_before_tokenizing(base, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps({"text": "ab" * 2_500_000}) + "\n" + json.dumps({"text": "cd"}) + "\n")
    one_error_line(invoke(["nll", source, *base]), 3, "characters cannot fit the model's maximum")
    skipped = invoke(["nll", source, *base, "--skip-invalid"])
    assert skipped.exit_code == 0 and len(read_jsonl(skipped.stdout)) == 1


# inputs that are not plain files, and outputs that are not either


def test_a_fifo_is_read_as_input(base, tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text('{"text": "ab"}\n{"text": "cd"}\n'), daemon=True)
    writer.start()
    result = invoke(["nll", fifo, *base])
    writer.join(timeout=60)
    assert result.exit_code == 0 and len(read_jsonl(result.stdout)) == 2


def test_a_directory_as_input_says_so(base, tmp_path):
    one_error_line(invoke(["nll", tmp_path, *base]), 2, "is a directory")


def test_dev_null_is_accepted_and_dev_full_says_the_disk_is_full(base, source):
    assert invoke(["nll", source, *base, "-o", "/dev/null"]).exit_code == 0
    one_error_line(invoke(["nll", source, *base, "-o", "/dev/full"]), 1, "the disk is full")
    summary = ["-o", "/dev/null", "--summary", "/dev/full"]
    one_error_line(invoke(["nll", source, *base, *summary]), 1, "cannot write --summary /dev/full")
    failed = invoke(["nll", source, *base, *summary, "--fail-above", "nll_per_token=0.001"])
    one_error_line(failed, 4, "quality gate failed")  # the gate's exit code, both problems on one line
    assert "cannot write --summary /dev/full" in failed.stderr


@pytest.mark.slow
def test_process_substitution_dev_stdin_and_closed_descriptors(oracle_dir, source):
    env = os.environ | {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    run = f"{sys.executable} -m itdd_cli nll -m {oracle_dir} --trust-remote-code -n 8 -q"
    itdd = f"{sys.executable} -m itdd_cli"
    script = (f"{run} <(cat {source}) | wc -l; {run} /dev/stdin < {source} | wc -l; {run} {source} <&- | wc -l; "
              f"{run} <&- ; echo rc=$?; {run} {source} >&- ; echo rc=$?; "
              f"{itdd} models >&- ; echo rc=$?; {itdd} compare {source} {source} >&- ; echo rc=$?")  # fmt: skip
    result = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert result.stdout.split() == ["3", "3", "3", "rc=2", "rc=2", "rc=2", "rc=2"], result.stderr
    assert "standard input is closed" in result.stderr and "standard output is closed" in result.stderr
    assert "itdd models prints its answer there" in result.stderr and "internal error" not in result.stderr


@pytest.mark.slow
def test_a_full_disk_keeps_the_whole_rows_written_before(oracle_dir, tmp_path):
    import resource
    import signal

    source = write_jsonl(tmp_path / "in.jsonl", [{"id": f"row{i}", "text": "abcd"} for i in range(200)])
    out = tmp_path / "out.jsonl"

    def small_files():  # a 1000-byte "disk": writes beyond fail (EFBIG) instead of killing the process
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))

    result = itdd("nll", source, "-m", oracle_dir, "--trust-remote-code", "-n", "8", "-q", "-o", out,
                  preexec_fn=small_files)  # fmt: skip
    assert result.returncode == 1 and "rows finished before are kept" in result.stderr, result.stderr
    text = out.read_text()
    assert text.endswith("\n") and all(row["id"].startswith("row") for row in read_jsonl(text))


# 20. a closed pipe ends quietly


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "table", "jsonl"])
def test_a_closed_pipe_ends_quietly_with_141(oracle_dir, tmp_path, fmt):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "abcd"} for _ in range(50)])
    env = os.environ | {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    args = ["nll", source, "-m", oracle_dir, "--trust-remote-code", "-n", "8", "--format", fmt]
    run = subprocess.Popen([sys.executable, "-m", "itdd_cli", *map(str, args)], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)  # fmt: skip
    run.stdout.close()  # the reader went away (`| head -0`)
    assert run.wait(timeout=600) == 141
    assert run.stderr.read() == ""
