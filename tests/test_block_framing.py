"""What precedes the text of a block-diffusion model, and so where its blocks fall, follows each
family's own published code (docs/formats-block-moe.md, "What precedes the text"): SDAR, LLaDA 2
and Fast-dLLM v2 feed the text with nothing in front, BD3-LM wraps it in <|endoftext|>. (Fast-dLLM
v2 predicts token i from state i−1, so a text with no prompt gets <|endoftext|> in front.) The reference below frames
the text itself, from the tokenizer alone, so a token itdd added or dropped in front moves every
block boundary and the exact sums part. Also: BD3-LM's published checkpoints carry two sampling
buffers, which are set aside, while any other unknown tensor is still refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from itdd_cli.errors import ModelError
from itdd_cli.estimators import Estimator
from itdd_cli.models import LoadOptions, load_model
from itdd_cli.scoring.runner import Command, Settings, score
from tests.support.block_checkpoints import (
    EOS,
    rewrite_config,
    write_bd3lm,
    write_fast_dllm_v2,
    write_llada2,
    write_sdar,
)
from tests.support.block_reference import brute_force_nll
from tests.support.cli import invoke
from tests.support.family_checkpoints import write_gpt2_like_tokenizer
from tests.support.jsonl import read_jsonl, write_jsonl

BLOCK = 4
OLD_SDAR_FRAMING = "<|endoftext|> … ∅ (never masked)"  # what itdd used before: config.json's BOS in front


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("block-framing")
    return {"sdar": write_sdar(root / "sdar"), "llada2": write_llada2(root / "llada2", block_size=BLOCK),
            "fast-dllm-v2": write_fast_dllm_v2(root / "fast-dllm-v2"), "bd3lm": write_bd3lm(root / "bd3lm"),
            "gpt2": write_gpt2_like_tokenizer(root / "gpt2")}  # fmt: skip


def _load(checkpoints, family: str, directory: Path | None = None):
    tokenizer = str(checkpoints["gpt2"]) if family == "bd3lm" else None
    block_size = BLOCK if family == "fast-dllm-v2" else None  # its default of 32 would enumerate 2^9 masks
    return load_model(LoadOptions(str(directory or checkpoints[family]), tokenizer=tokenizer, block_size=block_size))


def published_framing(checkpoints, family: str, prompt: str, response: str) -> tuple[list[int], int, int]:
    """(ids, start, length) as the family's own code lays the text out: the tokenizer's ids with no
    special tokens, then SDAR / LLaDA 2 / Fast-dLLM v2 put nothing around them and BD3-LM <|endoftext|>
    on both sides; Fast-dLLM v2 without a prompt: <|endoftext|> in front (itdd's, not the family's)."""
    from transformers import PreTrainedTokenizerFast

    source = checkpoints["gpt2"] if family == "bd3lm" else checkpoints[family]
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(source))
    context = tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else []
    scored = tokenizer(response, add_special_tokens=False)["input_ids"]
    before = [tokenizer.eos_token_id] if family == "bd3lm" or (family == "fast-dllm-v2" and not prompt) else []
    after = [tokenizer.eos_token_id] if family == "bd3lm" else []
    return [*before, *context, *scored, *after], len(before) + len(context), len(scored)


@pytest.mark.parametrize("family", ["sdar", "llada2", "fast-dllm-v2", "bd3lm"])
@pytest.mark.parametrize("prompt,response", [("", "the cat sat"), ("the c", "at sat on")])
def test_each_block_family_scores_under_its_published_framing(checkpoints, family, prompt, response):
    """itdd's exact estimate equals the brute-force block sum on the reference forward, the text
    framed as the family's own code frames it (a BOS in front, as itdd put before SDAR's and
    Fast-dLLM v2's prompts, moves every block boundary and fails by up to a nat here)."""
    model = _load(checkpoints, family)
    record = {"prompt": prompt, "response": response} if prompt else {"text": response}
    command = Command.cond_nll if prompt else Command.nll
    [row] = list(score(command, enumerate([record], 1), model, Settings(estimator=Estimator.exact)))
    ids, start, length = published_framing(checkpoints, family, prompt, response)
    expected = brute_force_nll(load_file(str(checkpoints[family] / "model.safetensors")), family, ids, start, length,
                               BLOCK, model.info.mask_id)  # fmt: skip
    assert row["tokens"] == length
    assert row["nll"] == pytest.approx(expected, rel=1e-5), (row["nll"], expected)


@pytest.mark.parametrize("family,apart", [("sdar", 0.9), ("fast-dllm-v2", 4.9)])
def test_a_bos_in_front_would_move_the_blocks_and_the_number(checkpoints, family, apart):
    """The reference itself: the same prompt + response with <|endoftext|> in front (itdd's framing
    before) and as published differ by about a nat or more, so the test above cannot pass by chance."""
    model = _load(checkpoints, family)
    ids, start, length = published_framing(checkpoints, family, "the c", "at sat on")
    w = load_file(str(checkpoints[family] / "model.safetensors"))
    published = brute_force_nll(w, family, ids, start, length, BLOCK, model.info.mask_id)
    shifted = brute_force_nll(w, family, [EOS, *ids], start + 1, length, BLOCK, model.info.mask_id)
    print(f"{family}: published framing {published:.4f} nats, <|endoftext|> in front {shifted:.4f} "
          f"(apart {abs(published - shifted):.2f})")
    assert abs(published - shifted) > apart


def test_sdar_and_llada2_put_nothing_in_front_whatever_bos_the_files_name(checkpoints, tmp_path):
    """SDAR's config.json names <|endoftext|> as BOS; a LLaDA 2 tokenizer or config naming one
    changes nothing either: the family decides, once, at construction."""
    from transformers import PreTrainedTokenizerFast

    directory = shutil.copytree(checkpoints["llada2"], tmp_path / "llada2")
    rewrite_config(directory, bos_token_id=EOS)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(directory))
    tokenizer.bos_token = "<|endoftext|>"
    tokenizer.save_pretrained(str(directory))
    for model in (_load(checkpoints, "sdar"), _load(checkpoints, "llada2", directory)):
        assert model.prefix_ids == [] and model.suffix_ids == []
        assert model.frame([], [5, 6]).ids == [5, 6]
        assert model.info.framing.startswith("none (nothing before the text")
    assert _load(checkpoints, "bd3lm").info.framing.startswith("<|endoftext|> … <|endoftext|> (never masked)")


def test_fast_dllm_v2_puts_nothing_before_a_prompt_and_eos_before_a_lone_text(checkpoints):
    """Its config.json names <|endoftext|> as BOS; its own code feeds the prompt with nothing in front."""
    model = _load(checkpoints, "fast-dllm-v2")
    assert model.frame([7], [5, 6]).ids == [7, 5, 6] and model.frame([7], [5, 6]).start == 1
    alone = model.frame([], [5, 6])
    assert alone.ids == [EOS, 5, 6] and (alone.start, alone.length) == (1, 2)
    assert model.info.framing.startswith("none (nothing before the text")
    assert "a text with no prompt gets <|endoftext|> in front" in model.info.framing


def test_inspect_and_the_summary_say_what_precedes_the_text(checkpoints, tmp_path):
    shown = invoke(["inspect", "-m", str(checkpoints["sdar"])])
    assert shown.exit_code == 0, shown.output
    assert "nothing before the text" in " ".join(shown.output.split())
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "the cat"}])
    result = invoke(["nll", str(source), "-m", str(checkpoints["sdar"]), "-n", "8"])
    assert result.exit_code == 0, result.stderr
    assert "framing: none (nothing before the text" in " ".join(result.stderr.split())


def test_a_file_scored_under_the_old_framing_is_not_resumed(checkpoints, tmp_path):
    """The settings record holds the framing: a file made when SDAR had a BOS in front is refused."""
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": "the cat"}, {"id": "b", "text": "sat"}])
    out = tmp_path / "out.jsonl"
    common = ["nll", str(source), "-m", str(checkpoints["sdar"]), "-n", "8", "-q", "-o", str(out)]
    assert invoke(common).exit_code == 0
    out.write_text(out.read_text().splitlines()[0] + "\n")
    meta = Path(f"{out}.meta.json")
    record = json.loads(meta.read_text())
    record["settings"]["framing"] = OLD_SDAR_FRAMING
    meta.write_text(json.dumps(record))
    refused = invoke([*common, "--resume"])
    assert refused.exit_code == 2, refused.stderr
    assert f"framing {OLD_SDAR_FRAMING!r} → " in refused.stderr and "none (nothing before the text" in refused.stderr


# BD3-LM's sampling buffers


def test_bd3lm_sampling_buffers_are_set_aside_and_change_nothing(checkpoints, tmp_path):
    """As the published class saves them (top level), or under `backbone.`: the same numbers as without."""
    assert {"sampling_eps_min", "sampling_eps_max"} <= load_file(checkpoints["bd3lm"] / "model.safetensors").keys()
    plain = write_bd3lm(tmp_path / "plain", settings=False)
    assert "sampling_eps_min" not in load_file(plain / "model.safetensors")
    nested = write_bd3lm(tmp_path / "nested", settings=False)
    tensors = load_file(nested / "model.safetensors")
    tensors |= {"backbone.sampling_eps_min": torch.tensor(0.2), "backbone.sampling_eps_max": torch.tensor(0.8)}
    save_file(tensors, str(nested / "model.safetensors"))
    records = [{"prompt": "the c", "response": "at sat"}]
    exact = Settings(estimator=Estimator.exact)
    rows = [list(score(Command.cond_nll, enumerate(records, 1), _load(checkpoints, "bd3lm", directory), exact))[0]
            for directory in (checkpoints["bd3lm"], plain, nested)]  # fmt: skip
    assert rows[0]["nll"] == rows[1]["nll"] == rows[2]["nll"]


@pytest.mark.parametrize("name,tensor,named", [
    ("sampling_eps", torch.tensor(0.5), "sampling_eps"),  # a near name is still an unknown tensor
    ("backbone.sampling_eps_mid", torch.tensor(0.5), "backbone.sampling_eps_mid"),
    ("sampling_eps_min", torch.zeros(3), "sampling_eps_min holds 3 values"),  # not a setting
])  # fmt: skip
def test_any_other_unknown_tensor_is_still_refused_by_name(checkpoints, tmp_path, name, tensor, named):
    directory = shutil.copytree(checkpoints["bd3lm"], tmp_path / "bd3lm")
    tensors = load_file(directory / "model.safetensors")
    tensors[name] = tensor
    save_file(tensors, str(directory / "model.safetensors"))
    with pytest.raises(ModelError, match=named):
        _load(checkpoints, "bd3lm", directory)


def test_mdlm_still_refuses_the_bd3lm_buffers(tmp_path):
    """Only BD3-LM's class saves them; an MDLM checkpoint holding them is not what it claims."""
    from tests.support.family_checkpoints import write_mdlm

    directory = write_mdlm(tmp_path / "mdlm")
    tensors = load_file(directory / "model.safetensors") | {"sampling_eps_min": torch.tensor(1e-3)}
    save_file(tensors, str(directory / "model.safetensors"))
    tokenizer = str(write_gpt2_like_tokenizer(tmp_path / "gpt2"))
    with pytest.raises(ModelError, match="sampling_eps_min"):
        load_model(LoadOptions(str(directory), tokenizer=tokenizer))


def test_the_cli_scores_a_bd3lm_checkpoint_with_its_buffers(checkpoints, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "the cat"}])
    result = invoke(["nll", str(source), "-m", str(checkpoints["bd3lm"]), "--tokenizer",
                     str(checkpoints["gpt2"]), "-n", "8"])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert read_jsonl(result.stdout)[0]["tokens"] == 7
