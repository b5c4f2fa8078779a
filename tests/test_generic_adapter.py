"""A tiny BERT checkpoint in the real on-disk format, through the generic masked-LM adapter."""

from __future__ import annotations

import pytest
import torch

from itdd_cli.models import LoadOptions, load_model
from itdd_cli.scoring.engine import Engine, Job
from itdd_cli.scoring.runner import Command, Settings, score
from tests.support.batches import masked_batch
from tests.support.cli import invoke
from tests.support.family_checkpoints import write_tiny_bert
from tests.support.jsonl import read_jsonl, write_jsonl


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return write_tiny_bert(tmp_path_factory.mktemp("bert"))


@pytest.fixture(scope="module")
def bert(bert_dir):
    return load_model(LoadOptions(str(bert_dir)))


def test_loads_natively_with_the_mask_id_and_framing_from_the_tokenizer(bert):
    assert bert.info.family == "generic"
    assert bert.info.mask_id == 4 and bert.info.pad_id == 0
    assert bert.info.max_length == 24
    assert bert.info.framing.startswith("[CLS] … [SEP]")
    framed = bert.frame(bert.encode("ab"), bert.encode("cde"))
    assert framed.ids == [2, 5, 6, 7, 8, 9, 3] and framed.start == 3 and framed.length == 3


def test_padded_batches_give_the_same_log_probs_as_rows_scored_alone(bert):
    every_other = lambda length: torch.arange(length) % 2 == 0  # noqa: E731
    framed, batch, attention, score_mask, targets = masked_batch(bert, ["abc", "hgfedcba", "a bad cafe"], every_other)
    together = bert.target_logprobs(batch, attention, score_mask, targets)
    alone = []
    for row, f in enumerate(framed):
        n = len(f.ids)
        single = bert.target_logprobs(batch[row : row + 1, :n], attention[row : row + 1, :n],
                                      score_mask[row : row + 1, :n], targets[row : row + 1, :n])  # fmt: skip
        manual = torch.log_softmax(bert.model(input_ids=batch[row : row + 1, :n]).logits[0].float(), -1)
        positions = score_mask[row, :n].nonzero().flatten()
        assert torch.allclose(single, manual[positions, targets[row, positions]], atol=1e-6)
        alone.append(single)
    assert torch.allclose(together, torch.cat(alone), atol=1e-5)


def test_framing_and_prompt_tokens_are_never_masked_and_never_scored(bert):
    seen = []
    original = bert.target_logprobs

    def spy(input_ids, attention_mask, score_mask, targets):
        seen.append((input_ids.clone(), score_mask.clone()))
        return original(input_ids, attention_mask, score_mask, targets)

    bert.target_logprobs = spy
    try:
        rows = list(score(Command.cond_nll, [(1, {"prompt": "ab", "response": "cdef"})], bert, Settings(samples=16)))
    finally:
        del bert.target_logprobs
    assert rows[0]["tokens"] == 4 and rows[0]["prompt_tokens"] == 2
    for input_ids, score_mask in seen:
        assert not score_mask[:, :3].any() and not score_mask[:, 7:].any()  # [CLS] a b … [SEP]
        real = score_mask.any(1)  # the engine pads a batch to its shape with rows that score nothing
        assert real.any() and (input_ids[real, :3] == torch.tensor([2, 5, 6])).all()


def test_engine_order_and_numbers_do_not_depend_on_the_batch_layout(bert):
    jobs = [Job(torch.tensor(bert.frame([], bert.encode(t)).ids), 1, torch.rand(5, len(t)) < 0.5) for t in
            ["abcdefg", "ab", "hhh", "a b c d e"]]  # fmt: skip
    results = {}
    for layout in [dict(batch_rows=1), dict(batch_rows=3), dict(max_tokens=25), dict()]:
        out = list(Engine(bert, **layout).run(((i, [job]) for i, job in enumerate(jobs))))
        assert [payload for payload, _ in out] == [0, 1, 2, 3]
        results[str(layout)] = torch.stack([torch.cat([loss.sum(1) for loss in losses]) for _, losses in out])
    reference = results["{'batch_rows': 1}"]
    for losses in results.values():
        assert torch.allclose(losses, reference, atol=1e-5)


def test_cli_scores_a_bert_checkpoint_without_remote_code(bert_dir, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"text": "a cab"}, {"prompt": "x", "text": "hg"}])
    result = invoke(["nll", str(path), "-m", str(bert_dir), "-n", "8"])
    assert result.exit_code == 0, result.stderr
    assert [row["tokens"] for row in read_jsonl(result.stdout)] == [5, 2]
    assert "[CLS] … [SEP]" in result.stderr


def test_records_longer_than_the_position_table_are_input_errors(bert_dir, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"text": "abc"}, {"text": "a" * 23}])
    result = invoke(["nll", str(path), "-m", str(bert_dir), "-n", "8"])
    assert result.exit_code == 3
    assert "line 2: 25 tokens (framing included) exceed the model's maximum of 24" in result.stderr
