"""Block-diffusion and MoE families (SDAR, Fast-dLLM v2, LLaDA 2, LLaDA-MoE, RND1) in their hub
formats: native loading, agreement with an independent reference forward (block mask and
routing included), and the block estimator against brute-force enumeration."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from itdd_cli.errors import ModelError
from itdd_cli.estimators import Estimator
from itdd_cli.models import LoadOptions, detect_family, load_model
from itdd_cli.models.loading import read_config
from itdd_cli.scoring.blocks import block_spans
from itdd_cli.scoring.runner import Command, Settings, score
from tests.support.batches import about_half, masked_batch
from tests.support.block_checkpoints import (
    SIZES,
    rewrite_config,
    write_llada_moe,
)
from tests.support.block_reference import brute_force_nll, reference_config, reference_logprobs
from tests.support.cli import invoke
from tests.support.families import BLOCK_FAMILIES, FAMILY_CASES
from tests.support.family_checkpoints import write_gpt2_like_tokenizer
from tests.support.reference_block import decoder

HERE = ["sdar", "fast-dllm-v2", "llada2", "llada-moe", "rnd1", "bd3lm"]  # the families of reference_block.py


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("block-families")
    return {name: FAMILY_CASES[name].write(root / name) for name in HERE} | {
        "gpt2": write_gpt2_like_tokenizer(root / "gpt2")
    }


@pytest.fixture(scope="module")
def models(checkpoints):
    def options(name):  # SDAR and BD3-LM read their block size from config.json
        case = FAMILY_CASES[name]
        tokenizer = None if case.own_tokenizer else str(checkpoints["gpt2"])
        block_size = case.block if case.block_option else None
        return LoadOptions(str(checkpoints[name]), block_size=block_size, tokenizer=tokenizer)

    return {name: load_model(options(name)) for name in HERE}


def weights(checkpoints, name):
    return load_file(str(checkpoints[name] / "model.safetensors"))


@pytest.mark.parametrize("family", HERE)
def test_each_family_is_detected_from_config_json(checkpoints, family):
    assert detect_family(read_config(LoadOptions(str(checkpoints[family])))) == family


def test_llada_moe_is_told_from_dense_llada_by_its_architecture_and_finds_its_mask_id(checkpoints, models):
    config = read_config(LoadOptions(str(checkpoints["llada-moe"])))
    assert config["model_type"] == "llada" and "mask_token_id" not in config
    assert models["llada-moe"].info.mask_id == 41  # the tokenizer's <|mask|>, as 156895 is on the hub


@pytest.mark.parametrize("family", HERE)
def test_log_probs_match_an_independent_reference_forward(checkpoints, models, family):
    model = models[family]
    texts = ["the cat sat on the mat", "a dog.", "zebras, quietly"]
    framed, ids, attention, score_mask, targets = masked_batch(model, texts, about_half(1))
    got = model.target_logprobs(ids, attention, score_mask, targets)
    w = weights(checkpoints, family)
    expected, routes = [], []
    for row, f in enumerate(framed):
        logprobs = reference_logprobs(w, family, ids[row].tolist(), len(f.ids), FAMILY_CASES[family].block, routes)
        where = score_mask[row].nonzero().flatten()
        expected.append(logprobs[where, targets[row, where]])
    assert got.shape == torch.cat(expected).shape
    assert torch.allclose(got, torch.cat(expected), atol=1e-4), (got - torch.cat(expected)).abs().max()
    if family in ("llada2", "llada-moe", "rnd1"):  # the inputs exercise the router: tokens pick different experts
        assert all(len(set(layer)) >= 3 for layer in routes), [len(set(layer)) for layer in routes]


def test_the_block_mask_matters(checkpoints, models):
    """Without blocks (one block over everything) the SDAR logits differ: the mask is not a no-op."""
    w = weights(checkpoints, "sdar")
    ids = models["sdar"].encode("the cat sat on")
    blocked = reference_logprobs(w, "sdar", ids, len(ids), 4)
    assert (blocked - reference_logprobs(w, "sdar", ids, len(ids), None)).abs().max() > 1e-2


def _passes(model, prompt, response, samples):
    """Passes a record spends: each block draws `samples`, or enumerates its 2^L − 1 masks where they fit."""
    framed = model.frame(model.encode(prompt), model.encode(response))
    masks = [2**span.length - 1 for span in block_spans(framed, model.info.block_size)]
    return sum(count if count <= samples else samples for count in masks)


def _score(model, records, estimator=Estimator.exact, samples=8, batch_rows=None):
    settings = Settings(estimator=estimator, samples=samples, batch_rows=batch_rows)
    return list(score(Command.cond_nll, enumerate(records, 1), model, settings))


@pytest.mark.parametrize("family", BLOCK_FAMILIES)
def test_exact_block_estimate_is_the_sum_of_brute_force_per_block_sums(checkpoints, models, family):
    """A prompt of 5 framed tokens ends inside block 1: its tokens there stay context."""
    model = models[family]
    record = {"prompt": "the c", "response": "at sat"}
    [row] = _score(model, [record])
    framed = model.frame(model.encode(record["prompt"]), model.encode(record["response"]))
    expected = brute_force_nll(weights(checkpoints, family), family, framed.ids, framed.start, framed.length,
                               FAMILY_CASES[family].block, model.info.mask_id)  # fmt: skip
    assert row["nll_se"] == 0.0
    assert row["nll"] == pytest.approx(expected, rel=1e-5)


def test_block_size_one_is_the_autoregressive_chain_rule(checkpoints):
    model = load_model(LoadOptions(str(checkpoints["sdar"]), block_size=1))
    [row] = _score(model, [{"prompt": "th", "response": "e cat"}])
    ids = model.frame(model.encode("th"), model.encode("e cat")).ids
    w = weights(checkpoints, "sdar")
    chain = 0.0
    for i in range(2, len(ids)):  # −log p(x_i | x_<i): position i masked, causal attention, nothing after it
        row_ids = [*ids[:i], model.info.mask_id]
        logits = decoder(w, reference_config("sdar"), row_ids, torch.ones(i + 1, i + 1).tril().bool())
        chain -= float(torch.log_softmax(logits[i], -1)[ids[i]])
    assert row["nll"] == pytest.approx(chain, rel=1e-5)


def test_a_block_as_long_as_the_sequence_is_the_plain_estimator(checkpoints):
    model = load_model(LoadOptions(str(checkpoints["sdar"]), block_size=64))
    [row] = _score(model, [{"prompt": "th", "response": "e cat"}])
    framed = model.frame(model.encode("th"), model.encode("e cat"))
    w = weights(checkpoints, "sdar")
    plain = brute_force_nll(w, "sdar", framed.ids, framed.start, framed.length, None, model.info.mask_id)
    assert row["nll"] == pytest.approx(plain, rel=1e-5)


@pytest.mark.parametrize("family", ["sdar", "llada2"])
def test_monte_carlo_is_within_four_standard_errors_of_exact(models, family):
    record = {"prompt": "a", "response": "quiet zebra sat"}
    [exact] = _score(models[family], [record])
    [mc] = _score(models[family], [record], Estimator.stratified, samples=14)  # 4-token blocks: 15 masks
    assert mc["nll_se"] > 0
    assert abs(mc["nll"] - exact["nll"]) < 4 * mc["nll_se"]
    assert mc["samples"] == _passes(models[family], record["prompt"], record["response"], 14)


@pytest.mark.parametrize("family", ["sdar", "fast-dllm-v2", "llada2", "rnd1", "bd3lm"])
def test_padding_and_batch_composition_change_nothing(models, family):
    records = [{"prompt": "the", "response": "cat sat on the mat"}, {"prompt": "a", "response": "dog"},
               {"prompt": "zebras", "response": ", quietly."}]  # fmt: skip
    together = _score(models[family], records, Estimator.stratified, samples=8)
    for record, row in zip(records, together, strict=True):
        [alone] = _score(models[family], [record], Estimator.stratified, samples=8, batch_rows=1)
        assert alone["nll"] == pytest.approx(row["nll"], rel=1e-6)  # float32 rounding of other batch shapes
        assert alone["nll_se"] == pytest.approx(row["nll_se"], rel=1e-5, abs=1e-6)


def test_ratio_sums_block_differences_and_matches_the_two_nlls(models):
    settings = Settings(estimator=Estimator.exact)
    records = [{"prompt": "the", "chosen": "cat sat", "rejected": "dog ran off"}]
    [row] = list(score(Command.ratio, enumerate(records, 1), models["sdar"], settings))
    chosen, rejected = _score(models["sdar"], [{"prompt": "the", "response": "cat sat"},
                                               {"prompt": "the", "response": "dog ran off"}])  # fmt: skip
    assert row["log_ratio"] == pytest.approx(rejected["nll"] - chosen["nll"], rel=1e-6)
    [mc] = list(score(Command.ratio, enumerate(records, 1), models["sdar"], Settings(samples=14)))
    assert abs(mc["log_ratio"] - row["log_ratio"]) < 4 * mc["log_ratio_se"]


@pytest.mark.parametrize("estimator", [Estimator.stratified, Estimator.control_variate])
def test_coupled_blocks_give_identical_sides_a_log_ratio_of_exactly_zero(models, estimator):
    """Both sides have every block, so each block's draws are shared by rank: identical texts
    give identical losses draw by draw, a difference of 0 with SE 0 (and two different texts
    still give a positive SE)."""
    records = [{"prompt": "the", "chosen": "cat sat on", "rejected": "cat sat on"},
               {"prompt": "the", "chosen": "cat sat on", "rejected": "dog ran off"}]  # fmt: skip
    same, different = score(Command.ratio, enumerate(records, 1), models["sdar"], Settings(estimator, 14))
    assert same["log_ratio"] == 0.0 and same["log_ratio_se"] == 0.0
    assert same["nll_chosen"] == same["nll_rejected"]
    assert same["samples"] == _passes(models["sdar"], "the", "cat sat on", 14)
    assert different["log_ratio_se"] > 0


@pytest.mark.parametrize("options", [["ratio", "--target-se", "0.5"], ["ratio", "--until-decided", "2"], ["choice"]])
def test_rounds_and_choice_run_for_block_models(checkpoints, tmp_path, options):
    """Refused before issue #24; now each writes its row (tests/test_block_everywhere.py checks the numbers)."""
    from tests.support.jsonl import read_jsonl, write_jsonl

    record = {"prompt": "the", "chosen": " cat", "rejected": " dog", "choices": [" cat", " dog"]}
    path = str(write_jsonl(tmp_path / "in.jsonl", [record]))
    result = invoke([options[0], path, "-m", str(checkpoints["sdar"]), *options[1:]])
    assert result.exit_code == 0, result.stderr
    [row] = read_jsonl(result.stdout)
    assert row["id"] == 1


def test_exact_is_limited_per_block_not_per_record(models):
    """24 scored tokens after a 1-token prompt, blocks of 4: 3 + 4·5 + 1 tokens per block, so
    7 + 5·15 + 1 masks, where the record as a whole would be refused (24 > 16)."""
    [row] = _score(models["sdar"], [{"prompt": "a", "response": "abcdefghijklmnopqrstuvwx"}])
    assert row["tokens"] == 24 and row["samples"] == 7 + 5 * 15 + 1


def test_moe_models_load_with_device_map_auto(checkpoints, models):
    spread = load_model(LoadOptions(str(checkpoints["llada2"]), device_map="auto", block_size=4))
    record = [{"prompt": "a", "response": "cat sat"}]
    assert _score(spread, record)[0]["nll"] == pytest.approx(_score(models["llada2"], record)[0]["nll"], rel=1e-6)


def test_llada_moe_with_a_routing_expert_bias_is_refused(tmp_path):
    directory = write_llada_moe(tmp_path / "biased")
    rewrite_config(directory, moe_router_enable_expert_bias=True)
    with pytest.raises(ModelError, match="moe_router_enable_expert_bias"):
        load_model(LoadOptions(str(directory)))


@pytest.mark.parametrize("family", HERE)
@pytest.mark.parametrize("damage", ["missing", "unexpected", "mis-shaped"])
def test_damaged_weights_are_refused_not_initialised_at_random(checkpoints, tmp_path, family, damage):
    import shutil

    from safetensors.torch import save_file

    directory = shutil.copytree(checkpoints[family], tmp_path / family)
    tensors = load_file(directory / "model.safetensors")
    name = max(n for n in tensors if "norm" in n)  # a small tensor every family has
    if damage == "missing":
        del tensors[name]
    elif damage == "unexpected":
        tensors["extra.weight"] = torch.zeros(2)
    else:
        tensors[name] = torch.zeros(tensors[name].numel() + 1)
    save_file(tensors, str(directory / "model.safetensors"))
    tokenizer = None if FAMILY_CASES[family].own_tokenizer else str(checkpoints["gpt2"])
    with pytest.raises(ModelError, match="extra.weight" if damage == "unexpected" else name.replace(".", "\\.")):
        load_model(LoadOptions(str(directory), block_size=FAMILY_CASES[family].block, tokenizer=tokenizer))


def test_models_lists_the_new_families_and_inspect_shows_the_block_size(checkpoints):
    listing = invoke(["models"])
    for family in HERE:
        assert family in listing.output
    assert "inclusionAI/LLaDA2.0-mini" in listing.output
    shown = invoke(["inspect", "-m", str(checkpoints["sdar"])])
    assert shown.exit_code == 0, shown.output
    assert "block size 4" in shown.output
    overridden = invoke(["inspect", "-m", str(checkpoints["llada2"]), "--block-size", "8"])
    assert "block size 8" in overridden.output


@pytest.mark.parametrize("family", ["sdar", "fast-dllm-v2", "llada2"])
def test_the_concatenated_layout_gives_the_per_block_numbers(models, family):
    """One [noisy ‖ clean] row per draw carries every block; its per-block losses equal the
    per-block rows' (fast-dllm-v2: the shift reads a block's first token from the clean copy)."""
    from itdd_cli.models.base import Framed
    from itdd_cli.models.block import Layout
    from itdd_cli.scoring.blocks import block_spans
    from itdd_cli.scoring.engine import Engine, Job

    model, block = models[family], FAMILY_CASES[family].block
    ids = torch.tensor(model.frame([], model.encode("the quiet zebra")).ids)
    generator = torch.Generator().manual_seed(3)
    spans = block_spans(Framed(ids.tolist(), 1, len(ids) - 1), block)  # position 0 stays clean context
    masks = [torch.rand(5, span.length, generator=generator) < 0.5 for span in spans]
    jobs = [Job(ids[: span.end], span.start, m) for span, m in zip(spans, masks, strict=True)]
    [(_, per_position)] = list(Engine(model).run([(0, jobs)]))
    per_block = [losses.sum(dim=1) for losses in per_position]  # (N,) per span
    where = torch.cat([torch.zeros(5, 1, dtype=torch.bool), *masks], dim=1)  # (N, T)
    rows = ids.repeat(5, 2)
    score = torch.zeros_like(rows, dtype=torch.bool)
    score[:, : len(ids)] = where
    targets = rows.clone()
    rows[score] = model.info.mask_id
    model.layout = Layout.concatenated
    try:
        logprobs = model.target_logprobs(rows, torch.ones_like(rows), score, targets)
    finally:
        model.layout = Layout.per_block
    draw, position = score.nonzero(as_tuple=True)
    concatenated = torch.zeros(len(masks), 5, dtype=torch.float64)
    concatenated.index_put_((position // block, draw), -logprobs.double(), accumulate=True)  # span k = block k
    assert torch.allclose(torch.stack(per_block), concatenated, atol=1e-4)


@pytest.mark.parametrize("command", ["nll", "cond-nll", "ratio"])
def test_block_models_score_through_the_cli_with_a_block_size_override(checkpoints, models, tmp_path, command):
    from tests.support.jsonl import read_jsonl, write_jsonl

    rows = {"nll": [{"text": "the cat sat"}], "cond-nll": [{"prompt": "the", "response": " cat sat"}],
            "ratio": [{"prompt": "the", "chosen": " cat", "rejected": " dog ran"}]}[command]  # fmt: skip
    path = str(write_jsonl(tmp_path / "in.jsonl", rows))
    result = invoke([command, path, "-m", str(checkpoints["llada2"]), "--block-size", "4",
                     "--estimator", "exact"])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    [row] = read_jsonl(result.stdout)
    if command == "cond-nll":
        [expected] = _score(models["llada2"], rows)  # loaded with block size 4 too
        assert row["nll"] == pytest.approx(expected["nll"], rel=1e-6)
    assert "(llada2, float32 on cpu)" in result.stderr


@pytest.mark.parametrize("family", ["llada2", "llada-moe"])
def test_the_lm_head_runs_only_at_scored_positions(models, family):
    model = models[family]
    ids = torch.tensor([model.encode("the cat sat on the mat")])
    score_mask = torch.zeros_like(ids, dtype=torch.bool)
    score_mask[0, [3, 4, 9]] = True
    seen = []
    handle = model.model.lm_head.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape))
    try:
        model.target_logprobs(ids.masked_fill(score_mask, model.info.mask_id), torch.ones_like(ids), score_mask, ids)
    finally:
        handle.remove()
    assert seen == [torch.Size([3, SIZES["d"]])]  # three rows, not the 22 positions of the sequence
