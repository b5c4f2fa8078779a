"""The runner scores block models in the [noisy ‖ clean] layout: the same rows as one row per
block and draw (tests/support/per_block.py), in one forward row per distinct draw index."""

from __future__ import annotations

import pytest
import torch

from itdd_cli.errors import ModelError
from itdd_cli.estimators import Estimator
from itdd_cli.io.records import Fields
from itdd_cli.models import LoadOptions, load_model
from itdd_cli.models.block import Concatenated, equal_halves
from itdd_cli.results.rows import SPECS
from itdd_cli.scoring.blocks import block_spans
from itdd_cli.scoring.runner import Command, Settings, prepare, score
from tests.support.families import BLOCK_FAMILIES, FAMILY_CASES
from tests.support.family_checkpoints import write_gpt2_like_tokenizer
from tests.support.per_block import score_per_block

# Mixed lengths in one batch; prompts of 5 and 2 framed tokens end inside a block.
RECORDS = {
    "nll": [{"text": "the cat sat on the mat"}, {"text": "a dog."}, {"text": "zebras, quietly"}],
    "cond-nll": [{"prompt": "the c", "response": "at sat on the mat"}, {"prompt": "a", "response": " dog"},
                 {"prompt": "zebras", "response": ", quietly."}],
}  # fmt: skip


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("block-layout")
    gpt2 = str(write_gpt2_like_tokenizer(root / "gpt2"))

    def load(name):
        case = FAMILY_CASES[name]
        tokenizer = None if case.own_tokenizer else gpt2
        return load_model(LoadOptions(str(case.write(root / name)), block_size=case.block, tokenizer=tokenizer))

    return {name: load(name) for name in BLOCK_FAMILIES}


def _same_rows(got, expected):
    """Equal up to float32 rounding: 1e-6 relative. A standard error is a spread of values that
    each move by float32 rounding (≤ 2e-6 per token at losses near 8, ×L for the chain rule's
    weights), so it is compared to 1e-5 absolute as well."""
    assert len(got) == len(expected)
    for row, reference in zip(got, expected, strict=True):
        assert row.keys() == reference.keys()
        for key, value in reference.items():
            if isinstance(value, float):
                spread = 1e-5 if key.endswith("_se") else 1e-9
                assert row[key] == pytest.approx(value, rel=1e-6, abs=spread), key
            else:
                assert row[key] == value, key


@pytest.mark.parametrize("command", ["nll", "cond-nll"])
@pytest.mark.parametrize("family", BLOCK_FAMILIES)
def test_the_runner_gives_the_per_block_rows(models, family, command):
    """Control variate: blocks of different lengths spend different pilot passes (a 1-token block none)."""
    settings = Settings(estimator=Estimator.control_variate, samples=12)
    records = RECORDS[command]
    got = list(score(Command(command), enumerate(records, 1), models[family], settings))
    _same_rows(got, score_per_block(Command(command), records, models[family], settings))


@pytest.mark.parametrize("estimator", [Estimator.stratified, Estimator.chain_rule, Estimator.exact])
def test_every_estimator_gives_the_per_block_rows(models, estimator):
    """Exact enumerates a different count per block; the chain rule scores subsets of its masks."""
    settings = Settings(estimator=estimator, samples=8)
    records = RECORDS["cond-nll"]
    got = list(score(Command.cond_nll, enumerate(records, 1), models["fast-dllm-v2"], settings))
    _same_rows(got, score_per_block(Command.cond_nll, records, models["fast-dllm-v2"], settings))


def test_ratio_gives_the_per_block_rows(models):
    """Coupled sides of different lengths: a block only the rejected side has."""
    records = [{"prompt": "the", "chosen": " cat", "rejected": " dog ran off"}]
    settings = Settings(estimator=Estimator.stratified, samples=8)
    got = list(score(Command.ratio, enumerate(records, 1), models["sdar"], settings))
    _same_rows(got, score_per_block(Command.ratio, records, models["sdar"], settings))


def _forward_rows(model, method):
    seen = []
    original = getattr(model, method)

    def spy(input_ids, *rest):  # rows that score something: the engine pads a batch to its shape with empty rows
        score_mask = next(arg for arg in rest if isinstance(arg, torch.Tensor) and arg.dtype == torch.bool)
        seen.append(int(score_mask.any(1).sum()))
        return original(input_ids, *rest)

    setattr(model, method, spy)
    return seen


def _distinct_masks_per_block(model, record, settings):
    prepared = prepare(model, SPECS[Command.cond_nll].parse(record, 1, Fields()), settings)
    return [len(torch.unique(draws.plans[0].masks, dim=0)) for _, draws in prepared.draws.blocks]


@pytest.mark.parametrize("estimator", [Estimator.exact, Estimator.stratified])
def test_one_forward_row_per_draw_index_not_one_per_block_and_draw(models, estimator):
    """Exact on blocks of 3, 4, 4 and 2 scored tokens: 15 rows (the largest block's 2^4 − 1 masks)
    instead of 7 + 15 + 15 + 3 = 40. Stratified: as many rows as the block with the most distinct
    masks has (at most --samples), against their sum; blocks of 3 and 2 tokens (7 and 3 masks ≤ 8)
    are enumerated."""
    model = models["sdar"]
    record = {"prompt": "the c", "response": "at sat on the"}
    settings = Settings(estimator=estimator, samples=8)
    framed = model.frame(model.encode(record["prompt"]), model.encode(record["response"]))
    assert [span.length for span in block_spans(framed, 4)] == [3, 4, 4, 2]
    distinct = _distinct_masks_per_block(model, record, settings)
    if estimator is Estimator.exact:
        assert distinct == [7, 15, 15, 3]
    concatenated = _forward_rows(model, "concatenated_logprobs")
    per_block = _forward_rows(model, "target_logprobs")
    try:
        [row] = score(Command.cond_nll, [(1, record)], model, settings)
        assert sum(concatenated) == max(distinct) and per_block == []
        score_per_block(Command.cond_nll, [record], model, settings)
        assert sum(per_block) == sum(distinct)
    finally:
        del model.concatenated_logprobs, model.target_logprobs
    assert row["samples"] == (sum(distinct) if estimator is Estimator.exact else 7 + 8 + 8 + 3)  # draws, not rows


def test_a_row_holds_the_scored_blocks_and_only_the_clean_blocks_before_the_last(models):
    """A long prompt and a short response: the noisy copy starts at the response's block and the
    clean copy stops where the last scored block starts, so the row is no wider than the sequence."""
    model = models["sdar"]
    prepared = prepare(model, SPECS[Command.cond_nll].parse({"prompt": "the cat sat on", "response": " a"}, 1,
                                                          Fields()), Settings(samples=8))  # fmt: skip
    [job] = prepared.draws.jobs()
    framed = prepared.framed[0]
    assert (framed.start, framed.length, len(framed.ids)) == (14, 2, 16)  # blocks 3 (token 14, 15)
    copy = job.clean_copy
    assert (copy.noisy_start, copy.noisy_end, copy.clean_end) == (12, 16, 12)
    assert job.width == len(framed.ids)


def test_equal_halves_put_both_copies_at_the_same_positions():
    rows = equal_halves(torch.tensor([[1] * 6 + [0, 0], [1] * 8]))
    assert rows.noisy_length.tolist() == [3, 4]
    assert rows.positions[0, :6].tolist() == [0, 1, 2, 0, 1, 2] and rows.positions[1].tolist() == [0, 1, 2, 3] * 2


def test_a_model_without_blocks_refuses_concatenated_rows():
    from tests.support.fakes import UniformModel

    ids = torch.ones((1, 4), dtype=torch.long)
    rows = Concatenated(torch.zeros((1, 4), dtype=torch.long), torch.tensor([2]))
    with pytest.raises(ModelError, match="not a block-diffusion model"):
        UniformModel().concatenated_logprobs(ids, ids, rows, ids.bool(), ids)
