"""LLaDA, Dream and MDLM checkpoints in their original format, loaded natively and scored."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from itdd_cli.models import LoadOptions, detect_family, load_model
from itdd_cli.models.loading import read_config
from itdd_cli.scoring.engine import Engine, Job
from tests.support.batches import about_half, masked_batch
from tests.support.cli import invoke
from tests.support.family_checkpoints import (
    DREAM,
    LLADA,
    write_dream,
    write_gpt2_like_tokenizer,
    write_llada,
    write_mdlm,
)
from tests.support.jsonl import read_jsonl, write_jsonl
from tests.support.reference import decoder_logits, dream_names, llada_names


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    return {
        "llada": write_llada(root / "llada"),
        "llada-tied": write_llada(root / "llada-tied", tied=True, seed=1),
        "dream": write_dream(root / "dream"),
        "mdlm": write_mdlm(root / "mdlm"),
        "gpt2": write_gpt2_like_tokenizer(root / "gpt2"),
    }


def _load(checkpoints, name):
    tokenizer = str(checkpoints["gpt2"]) if name == "mdlm" else None
    return load_model(LoadOptions(str(checkpoints[name]), tokenizer=tokenizer))


FAMILY_OF = [("llada", "llada"), ("llada-tied", "llada"), ("dream", "dream"), ("mdlm", "mdlm")]


@pytest.mark.parametrize("name,family", FAMILY_OF)
def test_each_family_is_detected_from_config_json(checkpoints, name, family):
    assert detect_family(read_config(LoadOptions(str(checkpoints[name])))) == family


def _masked_batch(model, texts, seed=0):
    """Right-padded rows with about half of each text masked (the first token always); the four engine tensors."""
    return masked_batch(model, texts, about_half(seed, first=True))[1:]


@pytest.mark.parametrize("name", ["llada", "llada-tied", "dream"])
def test_log_probs_match_an_independent_reference_forward(checkpoints, name):
    model = _load(checkpoints, name)
    weights = load_file(str(checkpoints[name] / "model.safetensors"))
    shape = DREAM if name == "dream" else LLADA
    cfg = {"heads": shape["heads"], "kv_heads": shape["kv_heads"], "layers": 2, "theta": shape["theta"],
           "eps": 1e-6 if name == "dream" else 1e-5}  # fmt: skip
    names = dream_names if name == "dream" else llada_names(tied=name.endswith("tied"))
    ids, attention, score, targets = _masked_batch(model, ["hello world", "abc", "masked diffusion."])
    got = model.target_logprobs(ids, attention, score, targets)
    expected = []
    for row in range(ids.shape[0]):
        logits = decoder_logits(weights, names, ids[row].tolist(), int(attention[row].sum()), cfg)
        if name == "dream":  # position i−1 predicts token i
            logits = torch.cat([logits[:1], logits[:-1]])
        logprobs = torch.log_softmax(logits, -1)
        positions = score[row].nonzero().flatten()
        expected.append(logprobs[positions, targets[row, positions]])
    assert torch.allclose(got, torch.cat(expected), atol=1e-4)


@pytest.mark.parametrize("name", ["llada", "dream", "mdlm"])
def test_a_sequence_scores_the_same_alone_and_in_a_padded_batch(checkpoints, name):
    model = _load(checkpoints, name)
    texts = ["short one", "a considerably longer text.", "mid length"]
    ids, attention, score, targets = _masked_batch(model, texts, seed=3)
    jobs = []
    for row in range(len(texts)):
        n = int(attention[row].sum())
        start = int(score[row].nonzero()[0])
        length = len(model.encode(texts[row]))
        masks = score[row, start : start + length][None]
        jobs.append(Job(targets[row, :n], start, masks))
    alone = [next(iter(Engine(model, batch_rows=1).run([(0, [job])])))[1][0] for job in jobs]
    together = [losses[0] for _, losses in Engine(model, max_tokens=10_000).run((i, [j]) for i, j in enumerate(jobs))]
    for a, b in zip(alone, together, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_mdlm_never_mixes_lengths_in_a_batch_and_suppresses_the_mask_logit(checkpoints):
    model = _load(checkpoints, "mdlm")
    widths = []
    original = model.target_logprobs

    def spy(input_ids, attention_mask, score_mask, targets):
        assert bool(attention_mask.all())
        widths.append(input_ids.shape[1])
        return original(input_ids, attention_mask, score_mask, targets)

    model.target_logprobs = spy
    texts = ["ab", "abcdef", "abc", "abcdef"]
    jobs = [Job(torch.tensor(model.frame([], model.encode(t)).ids), 1, torch.ones(4, len(t), dtype=torch.bool))
            for t in texts]  # fmt: skip
    list(Engine(model, max_tokens=10_000).run((i, [j]) for i, j in enumerate(jobs)))
    assert sorted(widths) == [4, 5, 8]  # one batch per distinct length
    del model.target_logprobs
    ids = torch.tensor([model.frame([], model.encode("abcd")).ids])
    score = torch.zeros_like(ids, dtype=torch.bool)
    score[0, 1:5] = True
    masked = ids.masked_fill(score, model.info.mask_id)
    got = model.target_logprobs(masked, torch.ones_like(ids), score, ids)
    logits = model.model(masked, torch.zeros(1))[0].float()
    logits[:, model.info.mask_id] = float("-inf")
    assert torch.allclose(got, torch.log_softmax(logits, -1)[1:5].gather(1, ids[0, 1:5, None]).squeeze(1), atol=1e-6)


class PlantedBackbone(torch.nn.Module):
    """Hidden state at position j is the one-hot of the *input* token at j+1."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab

    def forward(self, input_ids, attention_mask=None):
        hidden = torch.zeros(*input_ids.shape, self.vocab)
        hidden[:, :-1] = torch.nn.functional.one_hot(input_ids[:, 1:], self.vocab).float() * 50
        return type("Output", (), {"last_hidden_state": hidden})()


def test_dream_reads_the_prediction_for_token_i_from_position_i_minus_1(checkpoints):
    model = _load(checkpoints, "dream")
    vocab = model.info.vocab_size
    model.model.model = PlantedBackbone(vocab)
    model.model.lm_head = torch.nn.Linear(vocab, vocab, bias=False)
    model.model.lm_head.weight.data = torch.eye(vocab)
    ids = torch.tensor([model.frame([], model.encode("planted")).ids])
    score = torch.zeros_like(ids, dtype=torch.bool)
    score[0, 1:8] = True
    logprobs = model.target_logprobs(ids, torch.ones_like(ids), score, ids)  # inputs left unmasked
    assert torch.allclose(logprobs, torch.zeros(7), atol=1e-6)  # scored as perfect


@pytest.mark.parametrize("name", ["llada", "dream", "mdlm"])
@pytest.mark.parametrize("command", ["nll", "cond-nll", "ratio"])
def test_each_family_scores_through_the_cli_without_remote_code(checkpoints, tmp_path, name, command):
    rows = {
        "nll": [{"text": "hello there"}, {"text": "ab"}],
        "cond-nll": [{"prompt": "question", "response": " answer"}],
        "ratio": [{"prompt": "q", "chosen": " good", "rejected": " bad one"}],
    }[command]
    args = [command, str(write_jsonl(tmp_path / "in.jsonl", rows)), "-m", str(checkpoints[name]), "-n", "8"]
    if name == "mdlm":
        args += ["--tokenizer", str(checkpoints["gpt2"])]
    result = invoke(args)
    assert result.exit_code == 0, result.stderr
    assert len(read_jsonl(result.stdout)) == len(rows)
    assert f"({name}, float32 on cpu)" in result.stderr
    assert "Warning" not in result.stderr


@pytest.mark.parametrize(
    "name,expected",
    [
        ("llada", ["llada", "50", "shifted logits │ no", "<|startoftext|> … ∅", "64"]),
        ("dream", ["dream", "52", "shifted logits │ yes", "<|beginoftext|> … <|endoftext|>", "64"]),
        ("mdlm", ["mdlm", "40", "time input     │ yes", "<|endoftext|> … <|endoftext|>", "32"]),
    ],
)
def test_inspect_reports_family_mask_shift_time_framing_and_length(checkpoints, name, expected):
    args = ["inspect", "-m", str(checkpoints[name])]
    if name == "mdlm":
        args += ["--tokenizer", str(checkpoints["gpt2"])]
    result = invoke(args)
    assert result.exit_code == 0, result.stderr
    for text in expected:
        assert text in result.stdout


def test_llada_refuses_options_llama_cannot_represent(tmp_path):
    import json

    directory = write_llada(tmp_path / "llada")
    config = json.loads((directory / "config.json").read_text()) | {"attention_layer_norm": True}
    (directory / "config.json").write_text(json.dumps(config))
    result = invoke(["inspect", "-m", str(directory)])
    assert result.exit_code == 1 and "attention_layer_norm" in result.stderr


def test_chat_template_wraps_the_prompt_as_a_user_turn_without_a_second_bos(tmp_path):
    import json

    directory = write_llada(tmp_path / "llada")
    config_path = directory / "tokenizer_config.json"
    template = "{{ bos_token }}{% for m in messages %}user {{ m['content'] }}.{% endfor %} assistant "
    config_path.write_text(json.dumps(json.loads(config_path.read_text()) | {"chat_template": template}))
    rows = [{"prompt": "hi", "response": "yo"}]
    path = write_jsonl(tmp_path / "in.jsonl", rows)
    plain = invoke(["cond-nll", str(path), "-m", str(directory), "-n", "8"])
    chat = invoke(["cond-nll", str(path), "-m", str(directory), "-n", "8", "--chat-template"])
    assert plain.exit_code == 0 and chat.exit_code == 0, chat.stderr
    assert read_jsonl(plain.stdout)[0]["prompt_tokens"] == 2
    # "<|startoftext|>user hi. assistant " → BOS + 19 characters; the framing BOS is not repeated
    assert read_jsonl(chat.stdout)[0]["prompt_tokens"] == 20
    assert "chat template" in chat.stderr and "chat template" not in plain.stderr
    model = load_model(LoadOptions(str(directory)))
    framed = model.frame(model.encode_chat_prompt("hi"), model.encode("yo"))
    assert framed.ids.count(model.prefix_ids[0]) == 1 and framed.start == 20


def test_chat_template_without_one_in_the_tokenizer_is_a_usage_error(checkpoints, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"prompt": "hi", "response": "yo"}])
    result = invoke(["cond-nll", str(path), "-m", str(checkpoints["llada"]), "--chat-template"])
    assert result.exit_code == 2 and "no chat template" in result.stderr


def test_device_map_auto_loads_through_accelerate_and_gives_the_same_numbers(checkpoints, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [{"text": "spread me"}])
    base = ["nll", str(path), "-m", str(checkpoints["llada"]), "-n", "8", "-q"]
    plain, mapped = (invoke(base + extra) for extra in ([], ["--device-map", "auto"]))
    assert mapped.exit_code == 0, mapped.stderr
    assert read_jsonl(mapped.stdout) == read_jsonl(plain.stdout)
