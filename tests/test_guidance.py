"""--cfg S: classifier-free guidance in the likelihood, as LLaDA's published evaluation computes it.

The reference here is the published recipe written out in the test: every masked set of the answer
enumerated, weighted as LLaDA's estimator weighs it (a masked count k uniform in 1..L, a set of that
size uniform, each masked token's cross-entropy divided by k / L), with the logits of the model
called directly on the conditional row and on its twin whose positions before the answer (the BOS
included) are all masked, combined as uncond + (S + 1)(cond − uncond) before the cross-entropy.
"""

from __future__ import annotations

import math
from itertools import combinations

import pytest
import torch
from transformers import AutoTokenizer

from itdd_cli.estimators import MONTE_CARLO, Estimator
from itdd_cli.models import LoadOptions, load_model
from itdd_cli.results.rows import Command
from itdd_cli.scoring.runner import Settings, score
from tests.support.cli import invoke, one_error_line
from tests.support.family_checkpoints import LLADA, write_llada
from tests.support.jsonl import read_jsonl, write_jsonl

PROMPT, ANSWER = "the cat", " sat"  # 4 answer tokens: 15 masked sets


@pytest.fixture(scope="module")
def llada(tmp_path_factory):
    return write_llada(tmp_path_factory.mktemp("llada") / "llada")


@pytest.fixture(scope="module")
def model(llada):
    return load_model(LoadOptions(str(llada)))


def published(model, directory, scale: float) -> float:
    """LLaDA's guided score of ANSWER after PROMPT, every masked set enumerated, in float64."""
    tokenizer = AutoTokenizer.from_pretrained(str(directory))
    bos = tokenizer.convert_tokens_to_ids("<|startoftext|>")
    prompt = [bos, *tokenizer.convert_tokens_to_ids(list(PROMPT))]
    answer = tokenizer.convert_tokens_to_ids(list(ANSWER))
    sequence = torch.tensor(prompt + answer)
    length, mask_id = len(answer), LLADA["mask"]
    total = 0.0
    for count in range(1, length + 1):
        sets = list(combinations(range(length), count))
        for subset in sets:
            masked = torch.zeros(len(sequence), dtype=torch.bool)
            masked[[len(prompt) + i for i in subset]] = True
            noisy = torch.where(masked, mask_id, sequence)
            unconditional = noisy.clone()
            unconditional[: len(prompt)] = mask_id  # the whole tokenised prompt, BOS included
            with torch.no_grad():
                logits = model.model(input_ids=torch.stack([noisy, unconditional])).logits.double()
            cond, uncond = logits[0], logits[1]
            guided = uncond + (scale + 1) * (cond - uncond)
            loss = torch.nn.functional.cross_entropy(guided[masked], sequence[masked], reduction="sum")
            total += (1 / length) * (1 / len(sets)) * float(loss) / (count / length)
    return total


def _cond_nll(model, scale: float, estimator=Estimator.exact, samples: int = 128) -> dict:
    settings = Settings(estimator=estimator, samples=samples, cfg=scale)
    [row] = score(Command.cond_nll, [(1, {"prompt": PROMPT, "response": ANSWER})], model, settings)
    return row


@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_exact_guided_score_equals_llada_published_formula(model, llada, scale):
    row = _cond_nll(model, scale)
    expected = published(model, llada, scale)
    assert row["guided_nll"] == pytest.approx(expected, abs=1e-6)
    assert row["guided_nll_se"] == 0.0
    assert "nll" not in row  # a guided score, not a log-likelihood: named so
    plain = _cond_nll(model, 0.0)["nll"]
    assert abs(row["guided_nll"] - plain) > 1e-3  # guidance changed the number: the test can tell


def test_scale_zero_is_the_plain_conditional_nll_and_the_formula_at_zero(model, llada):
    row = _cond_nll(model, 0.0)
    assert row["nll"] == pytest.approx(published(model, llada, 0.0), abs=1e-6)


def test_every_estimator_estimates_the_exact_guided_score(model):
    """The exact sum's weights are the expectation every Monte Carlo estimator draws from, guided or not."""
    prompt, answer = "the cat", " sat on."  # 8 tokens: 255 masked sets, more than -n draws
    objects = [(1, {"prompt": prompt, "response": answer})]
    [exact] = score(Command.cond_nll, objects, model, Settings(estimator=Estimator.exact, cfg=1.5))
    for estimator in MONTE_CARLO:  # the masked-conditional estimators (dse reads SEDD scores)
        [row] = score(Command.cond_nll, objects, model, Settings(estimator=estimator, samples=64, cfg=1.5))
        assert row["samples"] == 64  # draws; each cost two forward rows
        assert abs(row["guided_nll"] - exact["guided_nll"]) < 4 * row["guided_nll_se"], estimator


def test_choice_and_ratio_are_guided_like_cond_nll(model):
    prompt, texts = "the cat", [" sat", " ran", " is"]
    exact = Settings(estimator=Estimator.exact, cfg=1.0)
    alone = [next(score(Command.cond_nll, [(1, {"prompt": prompt, "response": t})], model, exact))["guided_nll"]
             for t in texts]  # fmt: skip
    [choice] = score(Command.choice, [(1, {"prompt": prompt, "choices": texts, "label": 0})], model, exact)
    assert choice["guided_logliks"] == pytest.approx([-value for value in alone], abs=1e-9)
    assert choice["pred"] == max(range(3), key=lambda i: -alone[i])
    [pair] = score(Command.ratio, [(1, {"prompt": prompt, "chosen": texts[0], "rejected": texts[1]})], model, exact)
    assert pair["guided_nll_chosen"] == pytest.approx(alone[0], abs=1e-9)
    assert pair["guided_log_ratio"] == pytest.approx(alone[1] - alone[0], abs=1e-9)
    monte_carlo = Settings(samples=16, cfg=1.0)
    [choice] = score(Command.choice, [(1, {"prompt": prompt, "choices": [" sat on", " ran to"]})], model, monte_carlo)
    assert choice["passes"] == 2 * 2 * 16  # two choices, sixteen draws, a row and its twin each


def test_cfg_zero_writes_byte_identical_files(llada, tmp_path):
    """--cfg 0 never takes the guided path: the rows and the settings record are the same bytes."""
    records = {"cond-nll": [{"prompt": "the cat", "response": " sat on the mat."}, {"prompt": "a", "response": " dog"}],
               "choice": [{"prompt": "the cat", "choices": [" sat", " ran"], "label": 0}]}  # fmt: skip
    for command, rows in records.items():
        source = write_jsonl(tmp_path / f"{command}.jsonl", rows)
        files = []
        for flags in ([], ["--cfg", "0"]):
            folder = tmp_path / f"{command}{len(flags)}"
            folder.mkdir()
            result = invoke([command, source, "-m", llada, "-n", "8", "-o", folder / "out.jsonl", "-q", *flags])
            assert result.exit_code == 0, result.output
            files.append([(folder / name).read_bytes() for name in ("out.jsonl", "out.jsonl.meta.json")])
        assert files[0] == files[1]
        assert b'"nll' in files[0][0] or b'"logliks"' in files[0][0]


def test_guided_run_names_its_fields_and_summary_and_counts_both_rows(llada, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "the cat", "response": " sat on the mat."}])
    summary = tmp_path / "summary.json"
    result = invoke(["cond-nll", source, "-m", llada, "-n", "8", "--cfg", "1.5", "--summary", summary,
                     "--format", "jsonl"])  # fmt: skip
    assert result.exit_code == 0, result.output
    [row] = read_jsonl(result.stdout)
    assert {"guided_nll", "guided_nll_se", "guided_nll_per_token", "guided_bits_per_byte"} <= set(row)
    assert "nll" not in row and "nll_per_token" not in row
    import json

    record = json.loads(summary.read_text())
    assert record["passes"] == 2 * 8  # each of the 8 draws and its unconditional twin
    assert "guided_nll_per_token" in record and "nll_per_token" not in record
    assert record["cfg"] == 1.5


@pytest.mark.parametrize("args, message", [
    (["nll", "--cfg", "1"], "--cfg guides the score by the prompt, and nll has none"),
    (["cond-nll", "--cfg", "-1"], "--cfg must be ≥ 0.0"),
    (["cond-nll", "--cfg", "nan"], "--cfg must be a number ≥ 0.0"),
])  # fmt: skip
def test_bad_guidance_is_a_one_line_usage_error(llada, tmp_path, args, message):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "abc", "prompt": "a", "response": "b"}])
    result = invoke([*args, source, "-m", llada, "-n", "8", "-q"])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_python_api_cfg_returns_guided_results_equal_to_the_cli_rows(llada, tmp_path):
    from itdd_cli import Scorer
    from itdd_cli.errors import UsageError

    scorer = Scorer.load(str(llada), samples=8, cfg=1.5)
    [result] = scorer.cond_nll(["the cat"], [" sat on the mat."])
    assert type(result).__name__ == "GuidedCondNllResult" and not hasattr(result, "nll")
    source = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "the cat", "response": " sat on the mat."}])
    cli = invoke(["cond-nll", source, "-m", llada, "-n", "8", "--cfg", "1.5", "-q", "--format", "jsonl"])
    [row] = read_jsonl(cli.stdout)
    assert result.guided_nll == row["guided_nll"] and result.guided_nll_se == row["guided_nll_se"]
    [pair] = scorer.ratio(["the cat"], [" sat"], [" ran"])
    assert math.isfinite(pair.guided_log_ratio)
    with pytest.raises(UsageError, match="^cfg guides the score by the prompt"):
        scorer.nll(["the cat"])
    with pytest.raises(Exception, match="cfg must be"):
        scorer.with_settings(cfg=-0.5)


def test_block_diffusion_models_refuse_guidance(tmp_path):
    from tests.support.block_checkpoints import write_sdar

    directory = write_sdar(tmp_path / "sdar")
    source = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "ab", "response": "cd"}])
    result = invoke(["cond-nll", source, "-m", directory, "-n", "8", "--cfg", "1", "-q"])
    assert result.exit_code == 2, result.output
    assert "--cfg is not supported for block-diffusion models" in result.output


def test_engine_counts_each_draw_and_its_twin_as_forward_rows(model):
    from itdd_cli.scoring.engine import Engine, Job

    framed = model.frame(model.encode("the cat"), model.encode(" sat on"))
    masks = torch.rand(6, framed.length, generator=torch.Generator().manual_seed(0)) < 0.5
    masks[:, 0] = True  # every draw scores something, and no two draws alike
    masks[torch.arange(6), torch.arange(1, 7) % framed.length] = ~masks[torch.arange(6), torch.arange(1, 7) % 7]
    job = Job(torch.tensor(framed.ids), framed.start, masks.unique(dim=0))
    draws = len(job.masks)
    seen = []
    engine = Engine(model, guidance=1.0, on_batch=seen.append, batch_rows=4)
    list(engine.run([(0, [job])]))
    assert engine.forward_rows == 2 * draws
    assert seen[-1].rows_done == seen[-1].rows_known == 2 * draws
    assert all(rows % 2 == 0 and rows <= 4 for rows, _ in engine.shapes)  # --batch-size counts both rows


def test_several_checkpoints_refuse_guidance(llada, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "ab", "response": "cd"}])
    result = invoke(["cond-nll", source, "-m", llada, "-m", tmp_path / "other", "-n", "8", "--cfg", "1", "-q"])
    assert result.exit_code == 2, result.output
    assert "--cfg scores one checkpoint at a time" in result.output


def test_compare_reads_two_guided_files(llada, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "prompt": "the cat", "response": text}
                                                 for i, text in enumerate([" sat", " ran on", " is"])])  # fmt: skip
    outputs = []
    for seed in (0, 1):
        out = tmp_path / f"seed{seed}.jsonl"
        result = invoke(["cond-nll", source, "-m", llada, "-n", "8", "--seed", seed, "--cfg", "1", "-o", out, "-q"])
        assert result.exit_code == 0, result.output
        outputs.append(out)
    result = invoke(["compare", *outputs])
    assert result.exit_code == 0, result.output
    assert "guided_nll_per_token" in result.output


def test_show_reads_a_guided_per_token_file(llada, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "the cat", "response": " sat on the mat."}])
    out = tmp_path / "guided.jsonl"
    result = invoke(["cond-nll", source, "-m", llada, "-n", "8", "--cfg", "1", "--per-token", "-o", out, "-q"])
    assert result.exit_code == 0, result.output
    [row] = read_jsonl(out.read_text())
    assert sum(row["guided_token_nll"]) == pytest.approx(row["guided_nll"], rel=1e-9)
    shown = invoke(["show", out])
    assert shown.exit_code == 0, shown.output
    assert "sat on the mat." in shown.output
    assert "guided nll" in shown.output  # a guided score, not a log-likelihood: said where it is shown


def test_guided_log_softmax_over_chunks_equals_the_formula_and_survives_a_suppressed_column():
    from itdd_cli.models.base import target_log_softmax
    from itdd_cli.models.guidance import guided_log_softmax

    generator = torch.Generator().manual_seed(0)
    cond, uncond = torch.randn(5, 37, generator=generator) * 3, torch.randn(5, 37, generator=generator) * 3
    cond[:, 7] = uncond[:, 7] = float("-inf")  # MDLM's mask column: never a prediction, in both rows
    targets = torch.tensor([0, 3, 36, 12, 20])
    scale = 2.5
    guided = uncond.double() + (scale + 1) * (cond.double() - uncond.double())
    guided[:, 7] = float("-inf")
    expected = torch.log_softmax(guided, -1)[torch.arange(5), targets]
    both = torch.cat([cond, uncond])
    for chunk in (8, 37, 64):  # several chunks, one exactly, one wider than the vocabulary
        got = guided_log_softmax(both, torch.cat([targets, targets]), scale, chunk)
        assert torch.allclose(got.double(), expected, atol=1e-5)
    assert torch.allclose(target_log_softmax(both, torch.cat([targets, targets]), scale).double(), expected, atol=1e-5)


def test_a_guidance_scale_float32_cannot_carry_is_refused_before_scoring(tmp_path):
    """(S + 1)·(cond − uncond) overflowed float32 from S ≈ 1e38 and was reported as the model's fault."""
    source = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "ab", "response": " cd"}])
    one_error_line(invoke(["cond-nll", source, "-m", "demo", "-n", "8", "--cfg", "1e38"]), 2, "--cfg must be ≤ 100")


def test_compare_of_a_plain_and_a_guided_file_says_which_is_which(llada, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "the cat", "response": " sat."}])
    for name, extra in (("plain", []), ("guided", ["--cfg", "1"])):
        result = invoke(["cond-nll", source, "-m", llada, "-n", "8", *extra, "-o", tmp_path / f"{name}.jsonl", "-q"])
        assert result.exit_code == 0, result.output
    compared = invoke(["compare", tmp_path / "plain.jsonl", tmp_path / "guided.jsonl"])
    one_error_line(compared, 2, "guided.jsonl is guided (--cfg)", "plain.jsonl is not guided", "same --cfg")
