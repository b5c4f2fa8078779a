"""The lm-evaluation-harness backend on the bundled demo model and a local task: no download."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch

from itdd_cli import Scorer
from itdd_cli.errors import UsageError
from tests.support.cli import invoke, nll_refusal, one_error_line
from tests.support.jsonl import read_jsonl
from tests.support.launchers import LAUNCHERS

lm_eval = pytest.importorskip("lm_eval")
from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.config.evaluate_config import EvaluatorConfig  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

from itdd_cli.harness.lm_eval_args import LM_EVAL_DEFAULT_DEVICE, parse_model_args  # noqa: E402
from itdd_cli.harness.lm_eval_backend import ItddLM, RequestError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TASK_DIR = ROOT / "tests" / "lm_eval_task"
ITEMS = TASK_DIR / "sentences.jsonl"
DUPLICATES = TASK_DIR / "duplicates.jsonl"
SAMPLES, SEED = 8, 3
OFFLINE = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@pytest.fixture(autouse=True)
def _offline_datasets(monkeypatch):
    for key, value in OFFLINE.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(ROOT)  # the task's data_files path is relative to the repository root


@pytest.fixture(scope="module")
def lm():
    return ItddLM(pretrained="demo", samples=SAMPLES, seed=SEED)


@pytest.fixture(scope="module")
def choice_rows(tmp_path_factory):
    summary = tmp_path_factory.mktemp("choice") / "summary.json"
    result = invoke(["choice", str(ITEMS), "-m", "demo", "-n", str(SAMPLES), "--seed", str(SEED),
                     "--summary", str(summary), "-q"])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return read_jsonl(result.stdout), json.loads(summary.read_text())


def _request(context, continuation, doc_id=0, kind="loglikelihood"):
    arguments = (context, continuation) if kind == "loglikelihood" else (continuation,)
    return Instance(kind, {}, arguments, 0, ("probe", doc_id, 1))


def test_simple_evaluate_on_a_local_task_scores_exactly_what_itdd_choice_scores(lm, choice_rows):
    rows, summary = choice_rows
    manager = TaskManager(include_path=str(TASK_DIR), include_defaults=False)
    out = lm_eval.simple_evaluate(model=lm, tasks=["itdd_sentences"], task_manager=manager, log_samples=True)
    results = out["results"]["itdd_sentences"]
    assert results["acc,none"] == summary["accuracy"]
    assert results["acc_norm,none"] == summary["accuracy_norm"]
    samples = sorted(out["samples"]["itdd_sentences"], key=lambda sample: sample["doc_id"])
    assert len(samples) == len(rows)
    for sample, row in zip(samples, rows, strict=True):
        assert [resp[0][0] for resp in sample["resps"]] == row["logliks"]  # bit for bit
    assert [result.loglik_se for result in lm.last_results] == [se for row in rows for se in row["logliks_se"]]


def test_trailing_whitespace_of_the_context_moves_to_the_continuation(lm):
    split = lm.loglikelihood([_request("Return the number of ", "items"), _request("Return the number of", " items", 1)
                              ])  # fmt: skip
    assert split[0] == split[1]
    assert split[0][1] is False  # is_greedy: itdd never decodes


def test_requests_of_one_question_share_draws_as_itdd_choice_does(lm):
    context, answers = "The default value is", [" None.", " True.", " the file."]
    got = lm.loglikelihood([_request(context, answer) for answer in answers])
    [expected] = lm.scorer.choice([answers], [context])
    assert [loglik for loglik, _ in got] == expected.logliks
    assert [result.loglik_se for result in lm.last_results] == expected.logliks_se
    assert {result.margin for result in lm.last_results} == {expected.margin}


def test_rolling_loglikelihood_is_itdd_nll_and_a_long_document_is_a_clear_error(lm):
    text = "This module provides access to some variables used by the interpreter."
    [value] = lm.loglikelihood_rolling([_request(None, text, kind="loglikelihood_rolling")])
    [expected] = Scorer(lm.scorer.model, lm.scorer.settings).nll([text])
    assert value == -expected.nll
    with pytest.raises(RequestError, match=r"lm-eval request \(task probe, doc 0, text 'word word .*exceed"):
        lm.loglikelihood_rolling([_request(None, "word " * 200, kind="loglikelihood_rolling")])


def test_generation_and_unknown_model_args_are_refused_with_a_message():
    with pytest.raises(RequestError, match="does not generate: probe need generate_until"):
        ItddLM.generate_until(None, [_request("Q:", {"until": ["\n"]}, kind="generate_until")])
    with pytest.raises(UsageError, match="unknown itdd model_args: temperature; choose from pretrained, samples"):
        ItddLM(pretrained="demo", temperature=0.7)


RUN = ["lm-eval", "run", "--model", "itdd", "--include_path", TASK_DIR, "--tasks", "itdd_sentences", "--limit", "1"]
ABSENT_GPU = "cuda:99"  # no machine this suite runs on has a hundred GPUs


@pytest.fixture
def no_model(monkeypatch):
    """`itdd lm-eval` in this process, failing the test if the model starts loading: the checks come first."""
    monkeypatch.setattr(Scorer, "load", lambda *args, **kwargs: pytest.fail("the model loaded before the checks"))
    monkeypatch.setattr(sys, "argv", list(sys.argv))  # run_lm_eval hands lm-eval its command line in sys.argv

    def run(*arguments):
        result = invoke([*RUN, *arguments])
        assert "lm-eval failed" not in result.stderr
        return one_error_line(result, 2)

    return run


@pytest.mark.parametrize(
    ("model_arg", "option", "value"),
    [
        ("seed", "--seed", "170141183460469231731687303715884105728"),
        ("seed", "--seed", "-170141183460469231731687303715884105729"),  # quoted: lm-eval's floats drop digits
        ("seed", "--seed", "x"),
        ("samples", "--samples", "0"),
        ("samples", "--samples", "2.5"),
        ("estimator", "--estimator", "foo"),
        ("dtype", "--dtype", "float64"),
        ("max_tokens", "--max-tokens", "0"),
        ("batch_size", "--batch-size", "-3"),
        ("family", "--family", "nope"),
    ],
)
def test_a_bad_model_arg_is_the_cli_options_one_line_usage_error_before_the_model_loads(no_model, model_arg, option,
                                                                                       value):  # fmt: skip
    line = no_model("--model_args", f"pretrained=demo,{model_arg}='{value}'")
    assert line == nll_refusal(option, value).replace(option, f"model_args {model_arg}")


@pytest.mark.parametrize(
    ("model_args", "message"),
    [
        ("samples=8,temperature=0.7", "unknown itdd model_args: temperature; choose from pretrained, samples, "),
        (f"samples={10**15}", f"model_args samples {10**15:,}: the draws of a 1-token record need about "),
        ("independent=maybe", "model_args independent 'maybe': expected true or false"),
        ("mc_log=no/such/dir/mc.jsonl", "model_args mc_log no/such/dir/mc.jsonl: no such directory no/such/dir"),
        (f"device={ABSENT_GPU}", f"model_args device {ABSENT_GPU}: "),
        ("seed=-170141183460469231731687303715884105729", "model_args seed -1.70141e+38: lm-eval reads a negative "
         "number as a float, which keeps only 16 digits; quote it (seed='-123…')"),
    ],
)
def test_other_bad_model_args_are_one_line_usage_errors_naming_them(no_model, model_args, message):
    assert message in no_model("--model_args", model_args)


def test_a_negative_number_lm_eval_reads_as_a_float_is_the_integer_written():
    from lm_eval._cli.utils import key_val_to_dict  # how lm-eval's --model_args parses `key=value`

    given = key_val_to_dict("seed=-5,samples=8,max_tokens=-1")
    assert given["seed"] == -5.0 and isinstance(given["seed"], float)
    with pytest.raises(UsageError, match="^model_args max_tokens must be ≥ 1$"):
        parse_model_args(given)
    args = parse_model_args(given | {"max_tokens": 64})
    assert (args.seed, args.samples) == (-5, 8) and isinstance(args.seed, int)


def test_a_named_absent_device_is_the_clis_usage_error_not_a_silent_cpu_run(no_model):
    assert no_model("--model_args", "samples=8", "--device", ABSENT_GPU) == nll_refusal("--device", ABSENT_GPU)


def test_device_in_model_args_and_a_different_named_device_are_refused(no_model):
    line = no_model("--model_args", "samples=8,device=auto", "--device", "cpu")
    assert "--device cpu and model_args device=auto disagree" in line


def test_device_in_model_args_wins_over_the_device_lm_eval_passes(capsys):
    harness = {"batch_size": 1, "max_batch_size": None, "device": LM_EVAL_DEFAULT_DEVICE}
    lm = ItddLM.create_from_arg_string("pretrained=demo,samples=8,device=cpu", harness)
    assert lm.scorer.model.info.device == "cpu"
    assert "itdd:" not in capsys.readouterr().err  # no notice: the user chose the device
    with pytest.raises(UsageError, match=f"--device {ABSENT_GPU}: "):  # a device lm-eval never defaults to
        ItddLM.create_from_arg_obj({"pretrained": "demo"}, harness | {"device": ABSENT_GPU})


def test_lm_eval_default_device_is_used_if_present_else_the_cpu_with_a_notice(capsys):
    assert EvaluatorConfig().device == LM_EVAL_DEFAULT_DEVICE  # what lm-eval's CLI passes when --device is not given
    lm = ItddLM.create_from_arg_obj({"pretrained": "demo", "samples": 8}, {"device": LM_EVAL_DEFAULT_DEVICE})
    notice = capsys.readouterr().err
    if torch.cuda.is_available():
        assert lm.scorer.model.info.device == LM_EVAL_DEFAULT_DEVICE and "itdd:" not in notice
    else:
        assert lm.scorer.model.info.device == "cpu"
        assert notice.strip() == ("itdd: lm-eval's default device cuda:0 is not on this machine; scoring on the CPU "
                                  "(pass --device to choose)")  # fmt: skip


def test_the_package_declares_the_lm_eval_entry_point_and_extra():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    module, _, name = project["entry-points"]["lm_eval.models"]["itdd"].partition(":")
    assert getattr(__import__(module, fromlist=[name]), name) is ItddLM
    assert any(requirement.startswith("lm-eval") for requirement in project["optional-dependencies"]["lm-eval"])
    assert any(requirement.startswith("lm-eval") for requirement in project["optional-dependencies"]["test"])


def test_lm_eval_help_starts_without_importing_lm_eval_torch_or_transformers():
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "itdd_cli", "lm-eval", "--help"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "itdd lm-eval run --model itdd" in result.stdout
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert not {name for name in imported if name.split(".")[0] in ("lm_eval", "torch", "transformers")}


@pytest.mark.slow  # lm-eval's CLI indexes its thousands of built-in task files first (about a minute here)
def test_itdd_lm_eval_command_runs_the_local_task_with_itdd_choices_accuracy(choice_rows, tmp_path):
    rows, summary = choice_rows
    mc_log = tmp_path / "mc.jsonl"
    model_args = f"pretrained=demo,samples={SAMPLES},seed={SEED},mc_log={mc_log},device=cpu"  # lm-eval passes one too
    command = [sys.executable, "-m", "itdd_cli", "lm-eval", "run", "--model", "itdd", "--model_args", model_args,
               "--include_path", str(TASK_DIR), "--tasks", "itdd_sentences", "--output_path", str(tmp_path / "out")]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600,
                            env=os.environ | OFFLINE | {"PYTHONPATH": str(ROOT)})  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "undecided" in result.stderr  # the Monte Carlo summary
    [results_file] = (tmp_path / "out").rglob("results_*.json")
    results = json.loads(results_file.read_text())["results"]["itdd_sentences"]
    assert results["acc,none"] == summary["accuracy"]
    assert results["acc_norm,none"] == summary["accuracy_norm"]
    report = json.loads(results_file.read_text())["config"]["itdd_monte_carlo"]["tasks"]["itdd_sentences"]
    assert report["questions"] == len(rows) and report["share_decided"] is None  # fixed draws: nothing decided
    assert report["forward_rows"] == SAMPLES * sum(len(row["tokens"]) for row in rows)
    logged = read_jsonl(mc_log.read_text())
    assert [row["loglik_se"] for row in logged] == [se for row in rows for se in row["logliks_se"]]


@pytest.mark.slow  # `accelerate launch`: two processes, each indexing lm-eval's built-in tasks
def test_data_parallel_lm_eval_splits_the_documents_and_keeps_every_number(choice_rows, tmp_path):
    rows, summary = choice_rows
    mc_log = tmp_path / "mc.jsonl"
    model_args = f"pretrained=demo,samples={SAMPLES},seed={SEED},mc_log={mc_log}"
    command = [*LAUNCHERS["accelerate"](), "lm-eval", "run", "--model", "itdd", "--model_args", model_args,
               "--include_path", str(TASK_DIR), "--tasks", "itdd_sentences",
               "--output_path", str(tmp_path / "out")]  # fmt: skip
    env = os.environ | OFFLINE | {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    [results_file] = (tmp_path / "out").rglob("results_*.json")
    results = json.loads(results_file.read_text())["results"]["itdd_sentences"]
    assert results["acc,none"] == summary["accuracy"]
    shares = [read_jsonl((tmp_path / f"mc.jsonl.rank{rank}").read_text()) for rank in (0, 1)]
    assert all(shares) and {row["doc_id"] for row in shares[0]}.isdisjoint(row["doc_id"] for row in shares[1])
    by_request = {(row["doc_id"], row["idx"]): row["loglik"] for share in shares for row in share}
    expected = {(doc, idx): loglik for doc, row in enumerate(rows) for idx, loglik in enumerate(row["logliks"])}
    assert by_request.keys() == expected.keys()  # every request scored once, on one process or the other
    # the same draws; float32 sums may round differently with one thread per process and other batch mates
    assert [by_request[key] for key in expected] == pytest.approx(list(expected.values()), rel=1e-6)


def test_duplicate_choices_are_scored_as_given_with_the_numbers_of_itdd_choice(lm, tmp_path):
    summary_path = tmp_path / "summary.json"
    result = invoke(["choice", str(DUPLICATES), "-m", "demo", "-n", str(SAMPLES), "--seed", str(SEED),
                     "--summary", str(summary_path), "-q"])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    rows, summary = read_jsonl(result.stdout), json.loads(summary_path.read_text())
    said = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())
    logger = logging.getLogger("lm_eval.itdd")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        manager = TaskManager(include_path=str(TASK_DIR), include_defaults=False)
        out = lm_eval.simple_evaluate(model=lm, tasks=["itdd_duplicates"], task_manager=manager, log_samples=True)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    samples = sorted(out["samples"]["itdd_duplicates"], key=lambda sample: sample["doc_id"])
    for sample, row in zip(samples, rows, strict=True):
        assert [resp[0][0] for resp in sample["resps"]] == row["logliks"]  # bit for bit, duplicates included
    results = out["results"]["itdd_duplicates"]
    assert (results["acc,none"], results["acc_norm,none"]) == (summary["accuracy"], summary["accuracy_norm"])
    # Equal choices share their draws, so they tie exactly and the first is picked, by both paths
    # (lm-eval's argmax): d0's label 1 is the second copy of its pick and never counts as right;
    # d2's label is the text of choices 0 and 2 and names the first.
    assert rows[0]["logliks"][0] == rows[0]["logliks"][1] and rows[0]["pred"] == 0 and rows[0]["correct"] is False
    assert rows[2]["logliks"][0] == rows[2]["logliks"][2] and rows[2]["pred"] == 0 and rows[2]["correct"] is True
    # the copies of the best choice tie: undecided in both paths (d0, d2), d1's copies are runners-up
    assert [row["margin"] for row in rows] == [0.0, rows[1]["margin"], 0.0] and rows[1]["margin"] > 0
    assert summary["undecided"] == pytest.approx(2 / 3)
    assert any("2 of 3 multiple-choice questions undecided" in line for line in said), said


def test_mc_log_refuses_an_existing_file_and_an_input_of_the_run_before_the_model_loads(no_model, tmp_path):
    existing, items = tmp_path / "mc.jsonl", ITEMS.read_bytes()
    existing.write_text("earlier run\n")
    assert no_model("--model_args", f"mc_log={existing}") == (
        f"itdd: error: model_args mc_log {existing} exists; pass mc_log_overwrite=true to replace it, or choose "
        "another path")  # fmt: skip
    assert no_model("--model_args", f"mc_log={ITEMS},mc_log_overwrite=true") == (
        f"itdd: error: model_args mc_log {ITEMS} is an input of this run (named in {TASK_DIR}/itdd_sentences.yaml); "
        "write it elsewhere")
    task = TASK_DIR / "itdd_sentences.yaml"
    assert no_model("--model_args", f"mc_log={task},mc_log_overwrite=true") == (
        f"itdd: error: model_args mc_log {task} is an input of this run (a task file); write it elsewhere")
    assert existing.read_text() == "earlier run\n" and ITEMS.read_bytes() == items


def test_a_model_arg_without_a_name_is_named_as_such(no_model):
    assert no_model("--model_args", "=demo") == ("itdd: error: model_args '=demo' has no name before '='; write "
                                                 "name=value, e.g. pretrained=demo (pretrained, samples, estimator, "
                                                 "seed, independent, batch_size, max_tokens, dtype, device, family, "
                                                 "tokenizer, revision, trust_remote_code, chat_template, mc_log, "
                                                 "mc_log_overwrite, until_decided, max_samples, long, "
                                                 "context, base, merge, cfg)")  # fmt: skip


def test_mc_log_holds_this_runs_requests_only_replaced_whole_with_a_settings_record(tmp_path):
    path = tmp_path / "mc.jsonl"
    path.write_text('{"task": "an earlier run"}\n')
    lm = ItddLM(pretrained="demo", samples=8, seed=SEED, mc_log=str(path), mc_log_overwrite="true")
    lm.loglikelihood([_request("The default value is", answer) for answer in [" None.", " True."]])
    lm.loglikelihood_rolling([_request(None, "import os", kind="loglikelihood_rolling")])
    rows = read_jsonl(path.read_text())
    context = "The default value is"
    assert [row["arguments"] for row in rows] == [[context, " None."], [context, " True."], ["import os"]]
    [expected] = lm.scorer.choice([[" None.", " True."]], ["The default value is"])
    assert [row["loglik_se"] for row in rows[:2]] == expected.logliks_se
    record = json.loads((tmp_path / "mc.jsonl.meta.json").read_text())
    assert (record["settings"]["command"], record["settings"]["samples"], record["settings"]["seed"]) == (
        "lm-eval", 8, SEED)
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".part")]
    with pytest.raises(UsageError, match=f"^model_args mc_log {path} exists; pass mc_log_overwrite=true"):
        ItddLM(pretrained="demo", samples=8, mc_log=str(path))


def test_until_decided_through_lm_eval_picks_as_itdd_choice_and_reports_in_the_results(tmp_path):
    lm_adaptive = ItddLM(pretrained="demo", samples=SAMPLES, seed=SEED, until_decided="0.01", max_samples="64")
    manager = TaskManager(include_path=str(TASK_DIR), include_defaults=False)
    out = lm_eval.simple_evaluate(model=lm_adaptive, tasks=["itdd_sentences"], task_manager=manager,
                                  log_samples=True)  # fmt: skip
    result = invoke(["choice", str(ITEMS), "-m", "demo", "-n", str(SAMPLES), "--seed", str(SEED),
                     "--until-decided", "0.01", "--max-samples", "64", "-q"])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(result.stdout)
    samples = sorted(out["samples"]["itdd_sentences"], key=lambda sample: sample["doc_id"])
    for sample, row in zip(samples, rows, strict=True):
        assert [resp[0][0] for resp in sample["resps"]] == row["logliks"]  # the same rounds, bit for bit
    report = out["config"]["itdd_monte_carlo"]
    assert report["until_decided"] == 0.01 and report["max_samples"] == 64
    task = report["tasks"]["itdd_sentences"]
    assert task["questions"] == len(rows)
    assert task["share_decided"] == pytest.approx(sum(row["decided"] for row in rows) / len(rows))
    assert task["forward_rows"] == sum(row["passes"] for row in rows)
    assert task["fixed_protocol_rows"] == 128 * sum(len(row["tokens"]) for row in rows)
    ses = [se for row in rows for se in row["logliks_se"]]
    assert task["mean_loglik_se"] == pytest.approx(sum(ses) / len(ses))
    json.dumps(out["config"])  # lm-eval writes it to the results JSON


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"until_decided": "0"}, "model_args until_decided 0: give an error rate in (0, 1)"),
        ({"until_decided": "nan"}, "model_args until_decided nan: give an error rate"),
        ({"until_decided": "20"}, "model_args until_decided 20: give an error rate"),
        ({"max_samples": "64"}, "model_args max_samples caps until_decided rounds"),
        ({"until_decided": "3", "samples": "16", "max_samples": "8"}, "model_args max_samples 8 is below samples 16"),
        ({"until_decided": "3", "max_samples": "1"}, "model_args max_samples must be ≥ 8"),
    ],
)
def test_bad_until_decided_model_args_are_one_line_usage_errors(given, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_model_args(given)


def test_lm_eval_run_help_loads_neither_torch_nor_transformers():
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "itdd_cli", "lm-eval", "run", "--help"],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "--model_args" in result.stdout  # lm-eval's own help of `run`
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert not {name for name in imported if name.split(".")[0] in ("torch", "transformers")}
    assert "itdd_cli.harness.lm_eval_backend" not in imported


def test_the_progress_bar_steps_after_every_batch_up_to_the_forward_rows(monkeypatch):
    import itdd_cli.harness.lm_eval_requests as requests

    seen = []

    class Bar(requests.tqdm):
        def update(self, n=1):
            super().update(n)
            seen.append((self.n, self.total))

    monkeypatch.setattr(requests, "tqdm", Bar)
    lm = ItddLM(pretrained="demo", samples=SAMPLES, seed=SEED, batch_size=4)
    questions = [("The default value is", [" None.", " True."]), ("If the file does not exist,", [" it is made."])]
    lm.loglikelihood([_request(context, answer, doc) for doc, (context, answers) in enumerate(questions)
                      for answer in answers])  # fmt: skip
    first, _, second = lm.last_results  # `passes` is per question: both choices of the first together
    rows = first.passes + second.passes
    assert len(seen) >= rows // 4 and seen[-1] == (rows, rows)  # a step per batch of 4 rows, ending full
    assert [n for n, _ in seen] == sorted(n for n, _ in seen) and seen[0][0] < rows


@pytest.mark.parametrize(("given", "dtype"), [("bf16", "bfloat16"), ("bfloat16", "bfloat16"), ("fp16", "float16"),
                                              ("float16", "float16"), ("half", "float16"), ("fp32", "float32"),
                                              ("float32", "float32"), ("auto", "auto")])  # fmt: skip
def test_lm_eval_and_pytorch_dtype_spellings_name_the_dtype(given, dtype):
    assert parse_model_args({"dtype": given}).dtype == dtype


def test_the_dtype_names_are_the_loaders_and_every_spelling_reaches_the_cli():
    from itdd_cli.cli.options import Dtype
    from itdd_cli.core import checks
    from itdd_cli.models.loading import DTYPES

    assert checks.DTYPE_NAMES == ("auto", *DTYPES)
    assert [member.value for member in Dtype] == [*checks.DTYPE_NAMES, *checks.DTYPE_ALIASES]


def test_the_cli_dtype_bf16_loads_bfloat16(tmp_path):
    summary = tmp_path / "summary.json"
    result = invoke(["nll", ROOT / "examples" / "demo.jsonl", "-m", "demo", "-n", "8", "--dtype", "bf16", "--summary",
                     summary, "-q"])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert json.loads(summary.read_text())["dtype"] == "bfloat16"


@pytest.mark.parametrize("given", ["auto", "auto:4", "1", None])
def test_batch_size_auto_and_auto_n_fill_batches_by_tokens(given):
    assert parse_model_args({"batch_size": given}).batch_size is None


def test_batch_size_auto_n_needs_a_whole_n_and_a_number_is_rows():
    assert parse_model_args({"batch_size": "16"}).batch_size == 16
    with pytest.raises(UsageError, match=r"^model_args batch_size 'auto:x': the N of auto:N must be an integer ≥ 1$"):
        parse_model_args({"batch_size": "auto:x"})
def test_cfg_model_arg_scores_what_itdd_choice_cfg_scores_and_rolling_refuses_it(tmp_path):
    guided = ItddLM(pretrained="demo", samples=SAMPLES, seed=SEED, cfg="1.5")  # lm-eval passes text
    context, continuations = "The cat sat on the", [" mat in the hall", " moon above the sea"]
    got = guided.loglikelihood([_request(context, c) for c in continuations])
    items = tmp_path / "items.jsonl"
    items.write_text(json.dumps({"prompt": context, "choices": continuations}) + "\n")
    result = invoke(["choice", items, "-m", "demo", "-n", SAMPLES, "--seed", SEED, "--cfg", "1.5", "-q",
                     "--format", "jsonl"])  # fmt: skip
    assert result.exit_code == 0, result.output
    [row] = read_jsonl(result.stdout)
    assert [loglik for loglik, _ in got] == row["guided_logliks"]  # bit for bit
    assert guided.last_results[0].passes == row["passes"] == 2 * 2 * SAMPLES  # each draw and its twin
    plain = ItddLM(pretrained="demo", samples=SAMPLES, seed=SEED).loglikelihood([_request(context, continuations[0])])
    assert plain[0][0] != got[0][0]
    with pytest.raises(UsageError, match="model_args cfg guides the score by the prompt"):
        guided.loglikelihood_rolling([_request("", "The cat sat.", kind="loglikelihood_rolling")])
    with pytest.raises(UsageError, match="model_args cfg must be"):
        parse_model_args({"cfg": "-1"})
