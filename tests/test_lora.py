"""LoRA adapters saved by peft for LLaDA and Dream in their published layouts: itdd's numbers are those of
the checkpoint with B·A merged into its published tensors by hand (tests/lora_checkpoints.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings

import pytest
import torch
from safetensors.torch import load_file, save_file

from itdd_cli import Scorer
from itdd_cli.errors import ModelError, UsageError
from itdd_cli.harness.lm_eval_backend import ItddLM
from tests.support.cli import invoke
from tests.support.family_checkpoints import write_dream, write_llada
from tests.support.jsonl import read_jsonl, write_jsonl
from tests.support.lora_checkpoints import write_adapter, write_merged

pytest.importorskip("peft")  # makes the adapters (the `lora` extra); itdd applies them without it

TEXTS = ["hello world", "abc de fgh", "the cat sat."]
LLADA_TARGETS = ["q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out"]  # ff_out: the head too
DREAM_TARGETS = ["q_proj", "v_proj", "o_proj", "gate_proj", "down_proj"]
SAMPLES = 8


@pytest.fixture(autouse=True)
def _quiet_peft():
    with warnings.catch_warnings():  # peft warns about the mirror not being a transformers model
        warnings.simplefilter("ignore")
        yield


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora-bases")
    return {"llada": write_llada(root / "llada"), "dream": write_dream(root / "dream")}


def _nll(model, **load):
    return [result.nll for result in Scorer.load(str(model), samples=SAMPLES, **load).nll(TEXTS)]


CASES = {
    "llada": ("llada", LLADA_TARGETS, {}),
    "llada-rslora-rank-pattern": ("llada", ["q_proj", "ff_proj"], {"use_rslora": True, "rank_pattern": {"q_proj": 2}}),
    "dream": ("dream", DREAM_TARGETS, {}),
    "dream-modules-to-save": ("dream", ["q_proj", "k_proj"], {"modules_to_save": ["lm_head"]}),
}


@pytest.mark.parametrize("case", CASES)
def test_an_adapter_scores_as_its_base_with_the_update_merged_by_hand(bases, tmp_path, case):
    family, targets, settings = CASES[case]
    adapter = write_adapter(bases[family], tmp_path / "adapter", targets, **settings)
    merged = write_merged(bases[family], adapter, tmp_path / "merged")
    scored, expected, base = _nll(adapter), _nll(merged), _nll(bases[family])
    assert scored == pytest.approx(expected, abs=1e-6, rel=0)
    assert all(abs(a - b) > 0.5 for a, b in zip(scored, base, strict=True))  # the adapter changed the numbers


@pytest.mark.parametrize("family", ["llada", "dream"])
def test_an_unmerged_adapter_agrees_with_the_merged_one(bases, tmp_path, family):
    targets = LLADA_TARGETS if family == "llada" else DREAM_TARGETS
    adapter = write_adapter(bases[family], tmp_path / "adapter", targets)
    unmerged, merged = _nll(adapter, merge=False), _nll(adapter)
    assert unmerged == pytest.approx(merged, rel=1e-5, abs=0)  # float32 rounding of another order of operations
    assert unmerged != merged  # the update really ran as a separate path


def test_base_overrides_the_base_the_adapter_names(bases, tmp_path):
    adapter = write_adapter(bases["llada"], tmp_path / "adapter", ["q_proj"], base=str(tmp_path / "moved"))
    with pytest.raises(ModelError, match="moved, is not a directory here.*pass --base"):
        Scorer.load(str(adapter))
    merged = write_merged(bases["llada"], adapter, tmp_path / "merged")
    assert _nll(adapter, base=str(bases["llada"])) == pytest.approx(_nll(merged), abs=1e-6, rel=0)


@pytest.mark.parametrize("sizes,tensor", [({"d": 32}, "model.transformer.blocks.0.ff_out is [64, 96] in the "
                                                      "adapter, [32, 96] in the base"),
                                          ({"embedding": 64}, "model.transformer.ff_out is [56, 64] in the adapter, "
                                                              "[64, 64] in the base")])  # fmt: skip
def test_a_base_of_other_shapes_or_vocabulary_is_refused_naming_the_tensor(bases, tmp_path, sizes, tensor):
    other = write_llada(tmp_path / "other", **sizes)
    adapter = write_adapter(bases["llada"], tmp_path / "adapter", LLADA_TARGETS)
    with pytest.raises(ModelError, match="was not trained on the base") as error:
        Scorer.load(str(adapter), base=str(other))
    assert tensor in str(error.value)


@pytest.mark.parametrize("targets,counted", [(["q_proj", "att_proj"], "2 of its 4 LoRA layers"),
                                             (["att_proj"], "2 of its 2 LoRA layers")])  # fmt: skip
def test_targets_the_base_lacks_are_refused_naming_them(bases, tmp_path, targets, counted):
    extra = ("model.transformer.blocks.0.att_proj", "model.transformer.blocks.1.att_proj")  # OLMo's fused qkv
    adapter = write_adapter(bases["llada"], tmp_path / "adapter", targets, extra=extra)
    with pytest.raises(ModelError, match="match no linear layer") as error:
        Scorer.load(str(adapter))
    assert counted in str(error.value)
    assert "model.transformer.blocks.0.att_proj, model.transformer.blocks.1.att_proj" in str(error.value)
    assert ("applied not at all" if len(targets) == 1 else "applied in part") in str(error.value)


def _edited(adapter, **changes):
    path = adapter / "adapter_config.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))
    return adapter


@pytest.mark.parametrize("changes,named", [
    ({"peft_type": "IA3"}, "peft_type 'IA3'"),
    ({"use_dora": True}, "use_dora=true"),
    ({"bias": "all"}, 'bias="all"'),
    ({"init_lora_weights": "pissa"}, 'init_lora_weights="pissa"'),
    ({"alpha_pattern": {"q_proj": 4}}, "alpha_pattern="),
    ({"layer_replication": [[0, 2]]}, "layer_replication=[[0, 2]]"),
    ({"some_future_option": 3}, "some_future_option=3"),
    ({"r": 8}, "has rank 4, adapter_config.json says r=8"),
])  # fmt: skip
def test_adapters_itdd_would_not_apply_as_trained_are_refused_naming_the_setting(bases, tmp_path, changes, named):
    adapter = _edited(write_adapter(bases["llada"], tmp_path / "adapter", ["q_proj"]), **changes)
    with pytest.raises(ModelError) as error:
        Scorer.load(str(adapter))
    assert named in str(error.value)


def test_base_on_a_full_checkpoint_is_a_usage_error(bases):
    with pytest.raises(UsageError, match="not a LoRA adapter directory"):
        Scorer.load(str(bases["dream"]), base=str(bases["llada"]))


def test_the_cli_scores_an_adapter_inspects_it_and_refuses_a_bad_one_in_one_line(bases, tmp_path):
    adapter = write_adapter(bases["dream"], tmp_path / "adapter", DREAM_TARGETS, r=2, alpha=6)
    merged = write_merged(bases["dream"], adapter, tmp_path / "merged")
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": text} for i, text in enumerate(TEXTS)])
    rows = {}
    for name, model, flags in [("adapter", adapter, ["--no-merge"]), ("merged", merged, [])]:
        result = invoke(["nll", str(source), "-m", str(model), "-n", str(SAMPLES), *flags])
        assert result.exit_code == 0, result.stderr
        rows[name] = read_jsonl(result.stdout)
    assert [row["nll"] for row in rows["adapter"]] == pytest.approx([row["nll"] for row in rows["merged"]], rel=1e-5)
    shown = invoke(["inspect", "-m", str(adapter)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.stderr
    for line in [f"LoRA base │ {bases['dream']}", "LoRA rank │ 2", "LoRA alpha │ 6 (scale alpha/r)",
                 "LoRA targets │ down_proj, gate_proj, o_proj, q_proj, v_proj (10 layers)"]:  # fmt: skip
        assert line in " ".join(shown.stdout.split()), shown.stdout
    _edited(adapter, use_dora=True)
    refused = invoke(["nll", str(source), "-m", str(adapter)])
    assert refused.exit_code == 1 and "use_dora=true" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and "Traceback" not in refused.stderr


def test_checkpoint_folders_of_a_lora_run_are_a_training_run_study(bases, tmp_path):
    run = tmp_path / "run"
    steps = {100: 1, 200: 2}
    for step, seed in steps.items():
        write_adapter(bases["llada"], run / f"checkpoint-{step}", ["q_proj", "ff_out"], seed=seed)
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": text} for i, text in enumerate(TEXTS)])
    summary = tmp_path / "study.json"
    base = f"{bases['llada']}/"  # spelt otherwise than --base: still the base itself
    result = invoke(["nll", str(source), "-m", base, "-m", str(run), "--base", str(bases["llada"]),
                                      "-n", str(SAMPLES), "--summary", str(summary)])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(result.stdout)
    assert [row["nll"] for row in rows[: len(TEXTS)]] == _nll(bases["llada"])
    rows = rows[len(TEXTS) :]
    for index, step in enumerate(steps):
        folder = run / f"checkpoint-{step}"
        mine = rows[index * len(TEXTS) : (index + 1) * len(TEXTS)]
        assert {row["model"] for row in mine} == {str(folder)}
        merged = write_merged(bases["llada"], folder, tmp_path / f"merged-{step}")
        assert [row["nll"] for row in mine] == pytest.approx(_nll(merged), abs=1e-6, rel=0)
    assert [line["step"] for line in json.loads(summary.read_text())["checkpoints"]] == [None, 100, 200]


def test_lm_eval_takes_an_adapter_and_its_base_as_model_args(bases, tmp_path):
    adapter = write_adapter(bases["dream"], tmp_path / "adapter", DREAM_TARGETS, base=str(tmp_path / "elsewhere"))
    merged = write_merged(bases["dream"], adapter, tmp_path / "merged")
    given = f"pretrained={adapter},base={bases['dream']},merge=false,samples={SAMPLES},device=cpu"
    lm = ItddLM.create_from_arg_string(given)
    assert lm.scorer.model.info.adapter.merged is False and lm.scorer.model.info.name == str(adapter)
    assert [r.nll for r in lm.scorer.nll(TEXTS)] == pytest.approx(_nll(merged), rel=1e-5, abs=0)


def test_a_pickle_adapter_needs_allow_pickle(bases, tmp_path):
    adapter = write_adapter(bases["dream"], tmp_path / "adapter", ["q_proj"], safe_serialization=False)
    assert (adapter / "adapter_model.bin").is_file() and not (adapter / "adapter_model.safetensors").exists()
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": TEXTS[0]}])
    refused = invoke(["nll", str(source), "-m", str(adapter), "-n", str(SAMPLES)])
    assert refused.exit_code == 1 and "--allow-pickle" in refused.stderr
    allowed = invoke(["nll", str(source), "-m", str(adapter), "-n", str(SAMPLES), "--allow-pickle"])
    assert allowed.exit_code == 0, allowed.stderr
    assert read_jsonl(allowed.stdout)[0]["nll"] != pytest.approx(_nll(bases["dream"])[0], abs=0.1)


def test_tensors_that_are_no_lora_pair_are_refused_naming_them(bases, tmp_path):
    adapter = write_adapter(bases["llada"], tmp_path / "adapter", ["q_proj"])
    path = adapter / "adapter_model.safetensors"
    tensors = load_file(str(path)) | {"base_model.model.model.transformer.wte.lora_embedding_A": torch.ones(4, 56)}
    save_file(tensors, str(path))
    with pytest.raises(ModelError, match="model.transformer.wte.lora_embedding_A .LoRA on embeddings"):
        Scorer.load(str(adapter))


def test_resuming_an_adapter_run_on_another_base_is_refused(bases, tmp_path):
    adapter = write_adapter(bases["llada"], tmp_path / "adapter", ["q_proj"])
    other = write_llada(tmp_path / "other", seed=1)  # same shapes and tokenizer, other weights
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": text} for i, text in enumerate(TEXTS)])
    target = tmp_path / "out.jsonl"
    run = ["nll", str(source), "-m", str(adapter), "-n", str(SAMPLES), "-q", "-o", str(target)]
    assert invoke(run).exit_code == 0
    target.write_text(target.read_text().splitlines()[0] + "\n")  # as if interrupted after one row
    refused = invoke([*run, "--resume", "--base", str(other)])
    assert refused.exit_code == 2 and "weights" in refused.stderr
    assert invoke([*run, "--resume"]).exit_code == 0


def test_a_hub_id_naming_an_adapter_loads_it_from_the_hub_cache(bases, tmp_path):
    """`-m org/adapter`: the adapter's files come from the hub (here its cache, offline, as the hub
    client lays it out), its base from adapter_config.json; the NLL equals the local directory's."""
    adapter = write_adapter(bases["dream"], tmp_path / "adapter", DREAM_TARGETS, r=2, alpha=6)
    snapshot = tmp_path / "hub" / "models--someone--dream-lora" / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy(adapter / name, snapshot / name)
    (tmp_path / "hub" / "models--someone--dream-lora" / "refs").mkdir()
    (tmp_path / "hub" / "models--someone--dream-lora" / "refs" / "main").write_text("0" * 40)
    source = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": text} for i, text in enumerate(TEXTS)])
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    rows = {}
    for name, model in [("hub", "someone/dream-lora"), ("local", str(adapter))]:
        done = subprocess.run([sys.executable, "-m", "itdd_cli", "nll", str(source), "-m", model, "-n", str(SAMPLES),
                               "-q", "--format", "jsonl"], capture_output=True, text=True, env=env)  # fmt: skip
        assert done.returncode == 0, done.stderr
        rows[name] = [row["nll"] for row in read_jsonl(done.stdout)]
    assert rows["hub"] == rows["local"]
    assert rows["hub"] != pytest.approx(_nll(bases["dream"]), rel=1e-3)  # the adapter was applied
