"""Loading refuses what would score with the wrong weights: missing, unexpected or mis-shaped
tensors, a tokenizer larger than the model's vocabulary, a device the machine lacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from itdd_cli.models import FAMILIES, detect_family
from tests.support.block_checkpoints import write_llada2, write_llada_moe, write_rnd1
from tests.support.cli import invoke, one_error_line
from tests.support.families import FAMILY_CASES
from tests.support.family_checkpoints import (
    write_gpt2_like_tokenizer,
    write_llada,
    write_mdlm,
)
from tests.support.jsonl import read_jsonl, write_jsonl


def _checkpoint(tmp_path: Path, family: str) -> Path:
    directory = FAMILY_CASES[family].write(tmp_path / family)
    if not FAMILY_CASES[family].own_tokenizer:  # as MDLM repos: this one has its own, so no download is needed
        write_gpt2_like_tokenizer(directory)
    return directory


def _edit_config(directory: Path, **changes: object) -> None:
    path = directory / "config.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


def _drop_tensor(directory: Path, name: str) -> None:
    weights = load_file(str(directory / "model.safetensors"))
    del weights[name]
    save_file(weights, str(directory / "model.safetensors"))


def _with_layers(directory: Path, family: str, layers: int) -> None:
    """config.json claims `layers` layers (and lists of one entry per layer are cut or extended to match)."""
    case = FAMILY_CASES[family]
    config = json.loads((directory / "config.json").read_text())
    *sections, key = case.layers_key.split(".")  # a dotted key lies in a nested section
    place = config
    for section in sections:
        place = place[section]
    place[key] = layers
    for name in case.per_layer:
        config[name] = (config[name] * layers)[:layers]
    (directory / "config.json").write_text(json.dumps(config))


def _nll(tmp_path: Path, *args: str):  # type: ignore[no-untyped-def]
    path = write_jsonl(tmp_path / "in.jsonl", [{"text": "abc"}])
    return invoke(["nll", path, "-n", "8", "-q", *args])


def test_the_family_table_has_test_data_for_every_family():
    assert set(FAMILY_CASES) == set(FAMILIES)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_family_checkpoint_of_the_tests_loads_and_is_detected(tmp_path, family):
    directory = _checkpoint(tmp_path, family)
    assert detect_family(json.loads((directory / "config.json").read_text())) == family
    result = _nll(tmp_path, "-m", str(directory))
    assert result.exit_code == 0, result.stderr
    assert read_jsonl(result.stdout)[0]["tokens"] == 3


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_tensor_missing_from_the_checkpoint_is_refused_by_name(tmp_path, family):
    directory = _checkpoint(tmp_path, family)
    _drop_tensor(directory, FAMILY_CASES[family].tensor)
    result = _nll(tmp_path, "-m", str(directory))
    assert result.exit_code == 1
    line = one_error_line(result, 1)
    assert "missing from the checkpoint" in line and FAMILY_CASES[family].tensor in line


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_tensor_the_model_does_not_have_is_refused_by_name(tmp_path, family):
    directory = _checkpoint(tmp_path, family)
    unknown = FAMILY_CASES[family].layer_prefix.format(i=0) + "extra.weight"  # inside a layer the model has
    weights = load_file(str(directory / "model.safetensors"))
    save_file(weights | {unknown: torch.zeros(2)}, str(directory / "model.safetensors"))
    result = _nll(tmp_path, "-m", str(directory))
    assert result.exit_code == 1
    line = one_error_line(result, 1)
    assert "in the checkpoint, not the model" in line and unknown in line


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_truncated_weights_file_is_a_model_error_not_an_internal_one(tmp_path, family):
    directory = _checkpoint(tmp_path, family)
    weights = directory / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # an interrupted download
    result = _nll(tmp_path, "-m", str(directory))
    assert result.exit_code == 1 and "incomplete" in one_error_line(result, 1)


@pytest.mark.parametrize("family,key", [("llada", "d_model"), ("dream", "hidden_size")])
def test_a_config_value_of_the_wrong_type_is_named(tmp_path, family, key):
    directory = _checkpoint(tmp_path, family)
    _edit_config(directory, **{key: str(json.loads((directory / "config.json").read_text())[key])})
    result = _nll(tmp_path, "-m", str(directory))
    line = one_error_line(result, 1)
    assert result.exit_code == 1 and "config.json has an invalid value" in line and "expected int" in line


@pytest.mark.parametrize("family", list(FAMILIES))
def test_one_layer_more_in_config_json_than_in_the_weights_is_refused(tmp_path, family):
    directory = _checkpoint(tmp_path, family)
    case = FAMILY_CASES[family]
    _with_layers(directory, family, case.layers + 1)
    line = one_error_line(result := _nll(tmp_path, "-m", str(directory)), 1)
    assert result.exit_code == 1
    assert "missing from the checkpoint" in line and case.layer_prefix.format(i=case.layers) in line


@pytest.mark.parametrize("family", list(FAMILIES))
def test_one_layer_fewer_in_config_json_than_in_the_weights_is_refused(tmp_path, family):
    directory = _checkpoint(tmp_path, family)
    case = FAMILY_CASES[family]
    _with_layers(directory, family, case.layers - 1)
    line = one_error_line(result := _nll(tmp_path, "-m", str(directory)), 1)
    assert result.exit_code == 1
    assert "in the checkpoint, not the model" in line and case.layer_prefix.format(i=case.layers - 1) in line


def test_a_wider_vocabulary_in_config_json_names_the_tensors_and_both_shapes(tmp_path):
    directory = _checkpoint(tmp_path, "llada")
    _edit_config(directory, embedding_size=60)  # the weights have 56 rows
    line = one_error_line(result := _nll(tmp_path, "-m", str(directory)), 1)
    assert result.exit_code == 1
    assert "model.transformer.wte.weight is [56, 64] in the checkpoint, [60, 64] by config.json" in line
    assert "model.transformer.ff_out.weight is [56, 64]" in line


@pytest.mark.parametrize("family,key,value", [("llada", "d_model", 32), ("dream", "hidden_size", 32)])
def test_another_model_width_in_config_json_names_mis_shaped_tensors(tmp_path, family, key, value):
    directory = _checkpoint(tmp_path, family)
    _edit_config(directory, **{key: value})
    line = one_error_line(result := _nll(tmp_path, "-m", str(directory)), 1)
    assert result.exit_code == 1
    assert "mis-shaped:" in line and "[64]" in line and "[32]" in line and "and " in line  # many, counted


def test_a_tokenizer_with_more_ids_than_the_model_is_a_usage_error(tmp_path):
    result = _nll(tmp_path, "-m", "dna8", "--tokenizer", "demo")
    assert result.exit_code == 2
    line = one_error_line(result, 2)
    assert "--tokenizer" in line and "2047" in line and "vocabulary of 8 ids" in line


def test_a_tokenizer_path_that_does_not_exist_is_named(tmp_path):
    result = _nll(tmp_path, "-m", "demo", "--tokenizer", str(tmp_path / "missing"))
    assert result.exit_code == 2 and "missing: no such directory" in one_error_line(result, 2)


def test_a_tokenizer_that_spells_a_character_with_the_mask_id_is_refused(tmp_path):
    result = _nll(tmp_path, "-m", "demo", "--tokenizer", "dna8")  # dna8's 'G' is id 2, demo's mask
    assert result.exit_code == 2
    assert "its token 'G' has id 2, the model's mask token" in one_error_line(result, 2)


def test_a_checkpoint_whose_own_tokenizer_exceeds_its_vocabulary_is_refused(tmp_path):
    directory = write_llada(tmp_path / "llada", vocab=40, embedding=40, mask=30)  # BOS 40 and EOS 41 lie beyond
    _edit_config(directory, pad_token_id=None, eos_token_id=None)  # else transformers itself refuses the pad id
    line = one_error_line(result := _nll(tmp_path, "-m", str(directory)), 1)
    assert result.exit_code == 1 and "ids up to 41" in line and "vocabulary of 40 ids" in line


def test_mdlm_uses_the_tokenizer_in_its_own_directory(tmp_path):
    directory = _checkpoint(tmp_path, "mdlm")  # has tokenizer files; offline, GPT-2's would fail to load
    result = invoke(["inspect", "-m", directory])
    assert result.exit_code == 0, result.stderr
    assert "<|endoftext|> … <|endoftext|>" in result.stdout


def test_mdlm_without_a_tokenizer_of_its_own_still_asks_for_gpt2(tmp_path):
    directory = write_mdlm(tmp_path / "mdlm")
    line = one_error_line(result := invoke(["inspect", "-m", directory]), 1)
    assert result.exit_code == 1 and "from gpt2" in line  # offline in the tests: the default cannot load


@pytest.mark.parametrize("device", ["cuda", "cuda:7", "tpu", "mps", "meta", "cpu:x"])
def test_a_device_this_machine_lacks_is_a_usage_error_before_the_model_loads(tmp_path, device):
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    if device == "cuda:7" and torch.cuda.device_count() > 7:
        pytest.skip("this machine has eight CUDA devices")
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has an MPS device")
    # A model that does not exist: reaching the loader would exit 1 with "no such directory".
    line = one_error_line(result := _nll(tmp_path, "-m", str(tmp_path / "absent"), "--device", device), 2)
    assert result.exit_code == 2 and f"--device {device}" in line.replace("'", "")
    assert "absent" not in line


def test_each_config_claim_belongs_to_exactly_one_family():
    claims = [
        (kind, value.lower())
        for family in FAMILIES.values()
        for kind in ("architectures", "model_types", "auto_map_modules")
        for value in getattr(family, kind)
    ]
    assert len(claims) == len(set(claims))
    assert FAMILIES["generic"].architectures == () and FAMILIES["generic"].model_types == ()


@pytest.mark.parametrize(
    "config,family",
    [
        ({"model_type": "mmada"}, "llada"),
        ({"architectures": ["LLaDAModelLM"]}, "llada"),
        ({"auto_map": {"AutoModel": "modeling_llada.LLaDAModelLM"}}, "llada"),
        ({"auto_map": {"AutoModelForMaskedLM": "kuleshov-group/mdlm-owt--modeling_mdlm_2.MDLM"}}, "mdlm"),
        ({"auto_map": {"AutoTokenizer": ["tokenization_dream.DreamTokenizer", None]}}, "dream"),
        ({"model_type": "bert", "architectures": ["BertForMaskedLM"]}, "generic"),
        ({"auto_map": {"AutoModel": "modeling_oracle.OracleForMaskedLM"}}, "generic"),
    ],
)
def test_detection_reads_architectures_model_type_and_auto_map_modules(config, family):
    assert detect_family(config) == family


@pytest.mark.parametrize("writer", [write_llada2, write_llada_moe, write_rnd1], ids=lambda w: w.__name__)
def test_an_expert_shaped_unlike_its_siblings_is_named_with_both_shapes(tmp_path, writer):
    """transformers stacks the experts into one tensor and, when it cannot, points at a log line."""
    directory = writer(tmp_path / "moe")
    weights = load_file(str(directory / "model.safetensors"))
    name = next(key for key in sorted(weights) if ".experts.3.up_proj.weight" in key)
    weights[name] = weights[name][:-1]
    save_file(weights, str(directory / "model.safetensors"))
    line = one_error_line(result := _nll(tmp_path, "-m", str(directory)), 1)
    assert result.exit_code == 1
    assert f"{name} is [31, 64], the other experts' [32, 64]" in line
