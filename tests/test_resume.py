"""Interrupted runs keep whole rows, and --resume finishes them byte for byte."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support.cli import invoke
from tests.support.jsonl import write_jsonl


def _itdd(*args, **kwargs):
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-m", "itdd_cli", *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)  # fmt: skip


@pytest.fixture(scope="module")
def slow_oracle_dir(tmp_path_factory, distribution):
    """The oracle with a short sleep in every forward call, so a run can be caught mid-way."""
    from itdd_cli.oracle import write_checkpoint

    directory = write_checkpoint(tmp_path_factory.mktemp("slow-oracle"), distribution)
    code = (directory / "modeling_oracle.py").read_text()
    marker = "        batch, width = input_ids.shape\n"
    code = code.replace(marker, "        time.sleep(0.004)\n" + marker).replace(
        "import itertools\n", "import itertools\nimport time\n"
    )
    (directory / "modeling_oracle.py").write_text(code)
    return directory


@pytest.mark.slow
@pytest.mark.parametrize("signum,suffix", [(signal.SIGINT, ".jsonl"), (signal.SIGTERM, ".csv")])
def test_an_interrupted_run_keeps_whole_rows_and_resume_finishes_it_byte_for_byte(slow_oracle_dir, tmp_path, signum,
                                                                                   suffix):  # fmt: skip
    texts = ["abc", "dcba", "cd", "abab", "dab"]
    rows = [{"id": f"r{i}", "text": texts[i % 5]} for i in range(4000)]  # 4 look-ahead windows at 8 draws
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    common = ["nll", source, "-m", slow_oracle_dir, "--trust-remote-code", "-n", "8", "--batch-size", "32", "-q"]
    partial_path = tmp_path / f"partial{suffix}"
    interrupted = _itdd(*common, "-o", partial_path)
    while not partial_path.exists() or partial_path.stat().st_size < 200:
        assert interrupted.poll() is None, interrupted.stderr.read()
        time.sleep(0.02)
    interrupted.send_signal(signum)
    _, stderr = interrupted.communicate(timeout=120)
    assert interrupted.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    written = partial_path.read_text()
    assert written.endswith("\n") and 0 < len(written.splitlines()) < len(rows)
    resumed = _itdd(*common, "-o", partial_path, "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    full = _itdd(*common, "-o", tmp_path / f"full{suffix}")
    assert full.wait(timeout=300) == 0
    assert partial_path.read_bytes() == (tmp_path / f"full{suffix}").read_bytes()


def test_resume_cuts_a_partial_last_line_and_refuses_output_of_other_input(base, tmp_path):
    rows = [{"id": f"r{i}", "text": t} for i, t in enumerate(["ab", "cd", "abc", "d"])]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    target = tmp_path / "out.jsonl"
    assert invoke(["nll", source, *base, "-q", "-o", target]).exit_code == 0
    full = target.read_text()
    target.write_text(full.splitlines()[0] + "\n" + full.splitlines()[1][:20])  # killed mid-write
    assert invoke(["nll", source, *base, "-q", "-o", target, "--resume"]).exit_code == 0
    assert target.read_text() == full
    other = write_jsonl(tmp_path / "other.jsonl", [{"id": "zz", "text": "ab"}, *rows])
    refused = invoke(["nll", other, *base, "-o", target, "--resume"])
    assert refused.exit_code == 2 and "belongs to other input" in refused.stderr
    changed = write_jsonl(tmp_path / "changed.jsonl", [rows[0] | {"text": "abcd"}, *rows[1:]])
    refused = invoke(["nll", changed, *base, "-o", target, "--resume"])
    assert refused.exit_code == 2 and "does not match" in refused.stderr


def test_resume_needs_an_output_file_and_does_not_mix_with_overwrite(base, tmp_path):
    assert invoke(["nll", "-", *base, "--resume"], stdin='{"text": "ab"}\n').exit_code == 2
    both = invoke(["nll", "-", *base, "--resume", "--overwrite", "-o", tmp_path / "o.jsonl"], stdin="")
    assert both.exit_code == 2 and "contradict" in both.stderr
