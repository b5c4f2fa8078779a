"""lm-eval's perplexity tasks (loglikelihood_rolling) with the model args long=rolling, context=N, and
both kinds of lm-eval task on a tiny block-diffusion checkpoint: local tasks, nothing downloaded."""

from __future__ import annotations

import json
import math

import pytest

from itdd_cli.errors import UsageError
from tests.support.block_checkpoints import write_sdar
from tests.support.cli import invoke
from tests.support.jsonl import read_jsonl
from tests.test_lm_eval import OFFLINE, ROOT, SAMPLES, SEED, TASK_DIR, _request

lm_eval = pytest.importorskip("lm_eval")
from lm_eval.tasks import TaskManager  # noqa: E402

from itdd_cli.harness.lm_eval_backend import ItddLM, RequestError  # noqa: E402

PAGES = TASK_DIR / "pages.jsonl"
LETTERS = TASK_DIR / "letters.jsonl"
CONTEXT = 16
# The oracle checkpoint: no framing, a window of 8 tokens (characters); cut by hand at --context 3.
DOCUMENT, CUTS = "cadbabcdacbd", [("", "cadbabcd"), ("bcd", "acbd")]


@pytest.fixture(autouse=True)
def _offline_datasets(monkeypatch):
    for key, value in OFFLINE.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(ROOT)  # the tasks' data_files paths are relative to the repository root


def _evaluate(lm, task):
    manager = TaskManager(include_path=str(TASK_DIR), include_defaults=False)
    out = lm_eval.simple_evaluate(model=lm, tasks=[task], task_manager=manager, log_samples=True)
    return out, sorted(out["samples"][task], key=lambda sample: sample["doc_id"])


def _cli(*arguments):
    result = invoke([str(argument) for argument in arguments])
    assert result.exit_code == 0, result.stderr
    return read_jsonl(result.stdout)


def test_a_perplexity_task_rolls_each_document_as_itdd_nll_long_rolling():
    lm = ItddLM(pretrained="demo", samples=SAMPLES, seed=SEED, long="rolling", context=str(CONTEXT))
    out, samples = _evaluate(lm, "itdd_pages")
    rows = _cli("nll", PAGES, "--text-field", "page", "-m", "demo", "-n", SAMPLES, "--seed", SEED, "--long", "rolling",
                "--context", CONTEXT, "-q")  # fmt: skip
    assert len(samples) == len(rows) == 3 and all(row["windows"] >= 2 for row in rows)  # longer than the window
    assert [sample["resps"][0][0] for sample in samples] == pytest.approx([-row["nll"] for row in rows], rel=1e-6)
    total_bytes = sum(len(json.loads(line)["page"].encode()) for line in PAGES.read_text().splitlines())
    bits_per_byte = sum(row["nll"] for row in rows) / total_bytes / math.log(2)
    assert out["results"]["itdd_pages"]["bits_per_byte,none"] == pytest.approx(bits_per_byte, rel=1e-6)
    report = out["config"]["itdd_monte_carlo"]
    assert (report["long"], report["context"]) == ("rolling", CONTEXT)
    task = report["tasks"]["itdd_pages"]
    assert task["questions"] == 3 and task["share_decided"] is None and task["fixed_protocol_rows"] is None
    assert task["mean_loglik_se"] == pytest.approx(sum(row["nll_se"] for row in rows) / 3, rel=1e-6)
    assert task["forward_rows"] == sum(SAMPLES * row["windows"] for row in rows)


def test_rolled_through_lm_eval_the_exact_nll_is_the_sum_of_the_windows_true_conditionals(oracle_dir,
                                                                                         distribution):  # fmt: skip
    lm = ItddLM(pretrained=str(oracle_dir), trust_remote_code="true", estimator="exact", long="rolling", context="3")
    [loglik] = lm.loglikelihood_rolling([_request(None, DOCUMENT, kind="loglikelihood_rolling")])
    assert "".join(scored for _, scored in CUTS) == DOCUMENT
    truth = sum(distribution.cond_nll(prefix, scored) for prefix, scored in CUTS)
    assert loglik == pytest.approx(-truth, abs=1e-5)
    assert lm.last_results[0].loglik_se == 0.0 and lm.last_results[0].tokens == len(DOCUMENT)


def test_without_long_rolling_a_long_document_is_refused_advising_the_model_arg(oracle_dir):
    lm = ItddLM(pretrained=str(oracle_dir), trust_remote_code="true", samples="8")
    with pytest.raises(RequestError, match=r"exceed the model's maximum of 8 — score it in windows with model_args "
                                           r"long=rolling \(and context=N\)$"):  # fmt: skip
        lm.loglikelihood_rolling([_request(None, DOCUMENT, kind="loglikelihood_rolling")])
    with pytest.raises(RequestError, match="rolls loglikelihood_rolling documents only"):  # a loglikelihood request
        lm.loglikelihood([_request("", DOCUMENT)])


def test_rolling_model_args_are_checked_as_the_cli_options(oracle_dir):
    with pytest.raises(UsageError, match="^model_args context 8 leaves no room to score: the model's window holds 8"):
        ItddLM(pretrained=str(oracle_dir), trust_remote_code="true", long="rolling", context="8")
    with pytest.raises(UsageError, match="^model_args context sets rolling windows' context; pass long=rolling too$"):
        ItddLM(pretrained="demo", context="4")
    with pytest.raises(UsageError, match="^model_args long 'roll': choose one of error, rolling$"):
        ItddLM(pretrained="demo", long="roll")


def test_until_decided_for_choices_and_rolling_for_documents_go_together():
    lm = ItddLM(pretrained="demo", samples=SAMPLES, seed=SEED, until_decided="0.01", max_samples="64", long="rolling")
    [loglik] = lm.loglikelihood_rolling([_request(None, "word " * 100, kind="loglikelihood_rolling")])
    assert math.isfinite(loglik) and lm.last_results[0].decided is None  # a document has nothing to decide


@pytest.fixture(scope="module")
def sdar(tmp_path_factory):
    return write_sdar(tmp_path_factory.mktemp("sdar"))




def test_a_multiple_choice_task_on_a_block_diffusion_model_gives_itdd_choices_numbers(sdar, tmp_path):
    out, samples = _evaluate(ItddLM(pretrained=str(sdar), samples=SAMPLES, seed=SEED), "itdd_letters")
    summary_path = tmp_path / "summary.json"
    rows = _cli("choice", LETTERS, "-m", sdar, "-n", SAMPLES, "--seed", SEED, "--summary", summary_path, "-q")
    summary = json.loads(summary_path.read_text())
    for sample, row in zip(samples, rows, strict=True):
        assert [resp[0][0] for resp in sample["resps"]] == row["logliks"]  # bit for bit
    results = out["results"]["itdd_letters"]
    assert (results["acc,none"], results["acc_norm,none"]) == (summary["accuracy"], summary["accuracy_norm"])




def test_a_long_document_on_a_block_diffusion_model_rolls_as_itdd_nll(sdar, tmp_path):
    text = "the cat sat on the mat, and the dog sat by the door. " * 6  # 318 characters: over the 256 window
    lm = ItddLM(pretrained=str(sdar), samples=SAMPLES, seed=SEED, long="rolling", context="8")
    [loglik] = lm.loglikelihood_rolling([_request(None, text, kind="loglikelihood_rolling")])
    (tmp_path / "doc.jsonl").write_text(json.dumps({"text": text}) + "\n")
    [row] = _cli("nll", tmp_path / "doc.jsonl", "-m", sdar, "-n", SAMPLES, "--seed", SEED, "--long", "rolling",
                 "--context", 8, "-q")  # fmt: skip
    assert row["windows"] > 1 and loglik == pytest.approx(-row["nll"], rel=1e-6)
