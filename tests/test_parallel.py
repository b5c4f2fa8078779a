"""Data parallel runs (2 CPU processes over gloo) write exactly what one process writes."""

from __future__ import annotations

import json
import sys

import pytest

from itdd_cli.errors import InputError, ModelError
from itdd_cli.io.reader import read_objects
from itdd_cli.run.parallel import CHUNK_RECORDS, Shard, score_sharded
from itdd_cli.scoring.runner import Command, Settings, score
from tests.support.fakes import UniformModel
from tests.support.jsonl import write_jsonl
from tests.support.launchers import LAUNCHERS, run_launched

TEXTS = ["abcd", "d", "cabbad", "dd", "abcdabcd", "bca", "cc", "a", "dcb"]


@pytest.mark.slow
@pytest.mark.parametrize("launcher", list(LAUNCHERS))
@pytest.mark.parametrize("command", ["nll", "ratio"])
def test_two_processes_give_the_same_file_as_one(oracle_dir, tmp_path, launcher, command):
    if command == "nll":
        rows = [{"text": t} for t in TEXTS * 40]  # more than one exchange chunk
    else:
        pairs = zip(TEXTS, TEXTS[1:] + TEXTS[:1], strict=True)
        rows = [{"prompt": "c", "chosen": a[:7], "rejected": b[:7]} for a, b in pairs]
    source = write_jsonl(tmp_path / "in.jsonl", rows)
    args = [command, str(source), "-m", str(oracle_dir), "--trust-remote-code", "-n", "8"]
    single = run_launched([sys.executable, "-m", "itdd_cli"], [*args, "-o", "one.jsonl"], tmp_path)
    assert single.returncode == 0, single.stderr
    double = run_launched(LAUNCHERS[launcher](), [*args, "-o", "two.jsonl"], tmp_path)
    assert double.returncode == 0, double.stderr[:3000]
    assert "· 2 processes" in double.stderr  # the launcher really started two
    one, two = (tmp_path / "one.jsonl").read_text(), (tmp_path / "two.jsonl").read_text()
    assert len(one.splitlines()) == len(rows)
    assert two == one


@pytest.mark.slow
def test_an_invalid_record_in_another_shard_stops_all_processes_after_writing_what_came_before(oracle_dir, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS[:5]) + '{"txt": "x"}\n')
    args = ["nll", str(source), "-m", str(oracle_dir), "--trust-remote-code", "-n", "8", "-q", "-o", "out.jsonl"]
    result = run_launched(LAUNCHERS["torchrun"](), args, tmp_path)
    assert result.returncode != 0
    assert "line 6: missing field 'text'" in result.stderr
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 5


def test_input_errors_survive_the_trip_between_processes():
    import pickle

    error = pickle.loads(pickle.dumps(InputError(7, "missing field 'text'")))
    assert isinstance(error, InputError) and str(error) == "line 7: missing field 'text'"


def _score_chunk(chunk):
    return score(Command.nll, chunk, UniformModel(vocab_size=50, max_length=64), Settings(samples=8))


def test_the_merge_yields_every_row_in_input_order_and_stops_at_the_first_bad_record():
    bad = CHUNK_RECORDS + 44  # in the second chunk: the rows of the first are already out
    lines = [b"not json\n" if number == bad else b'{"text": "ab"}\n' for number in range(1, 2 * CHUNK_RECORDS)]
    rows = []
    with pytest.raises(InputError, match=f"line {bad}: not JSON"):
        rows.extend(score_sharded(read_objects(iter(lines)), _score_chunk, Shard()))
    assert [row["id"] for row in rows] == list(range(1, bad))


def test_an_unexpected_error_on_a_process_becomes_a_model_error_naming_it():
    def broken(chunk):
        yield from _score_chunk(chunk[:1])
        raise RuntimeError("device lost")

    rows = []
    with pytest.raises(ModelError, match="internal error on process .*RuntimeError: device lost"):
        rows.extend(score_sharded(read_objects(iter([b'{"text": "ab"}\n'] * 3)), broken, Shard()))
    assert len(rows) == 1
