"""The family fixture table: for every family of `itdd_cli.models.registry.FAMILIES`, how the tests
write its tiny checkpoint and what they know of it. A family added to the registry without an entry
here fails tests/test_strict_loading.py (the table's keys must equal the registry's)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tests.support.block_checkpoints import (
    LLADA2,
    SIZES,
    write_bd3lm,
    write_fast_dllm_v2,
    write_llada2,
    write_llada_moe,
    write_rnd1,
    write_sdar,
)
from tests.support.family_checkpoints import (
    LLADA,
    MDLM,
    SEDD,
    write_dream,
    write_llada,
    write_mdlm,
    write_sedd,
    write_tiny_bert,
)


@dataclass(frozen=True)
class FamilyCase:
    write: Callable[[Path], Path]  # the family's hub layout, tiny and random
    tensor: str  # one tensor of the checkpoint, in the checkpoint's own names
    layers_key: str  # the config.json key that counts the layers (dotted: in a nested section)
    layer_prefix: str  # every tensor of layer i starts with this, formatted with i=
    layers: int  # how many layers the tiny checkpoint has
    block: int | None = None  # the block size the tests score with; None: no blocks
    block_option: bool = False  # that size is passed at load (config.json has none, or a larger one)
    shift: bool = False  # position i−1 predicts token i
    own_tokenizer: bool = True  # False: the hub repository ships none; tests give the GPT-2 stand-in
    per_layer: tuple[str, ...] = ()  # other config.json keys holding one entry per layer


_QWEN = dict(layers_key="num_hidden_layers", layer_prefix="model.layers.{i}.", layers=SIZES["layers"])
_DIT = dict(layers_key="n_blocks", layer_prefix="backbone.blocks.{i}.", layers=MDLM["blocks"])

FAMILY_CASES: dict[str, FamilyCase] = {
    "llada": FamilyCase(write_llada, "model.transformer.blocks.0.ff_out.weight", "n_layers",
                        "model.transformer.blocks.{i}.", LLADA["layers"]),
    "dream": FamilyCase(write_dream, "model.layers.0.mlp.down_proj.weight", **_QWEN, shift=True),
    "mdlm": FamilyCase(write_mdlm, "backbone.blocks.0.mlp.2.weight", **_DIT, own_tokenizer=False),
    "sdar": FamilyCase(write_sdar, "model.layers.0.mlp.down_proj.weight", **_QWEN, block=4),
    "llada2": FamilyCase(write_llada2, "model.layers.0.mlp.down_proj.weight", **_QWEN | dict(layers=LLADA2["layers"]),
                         block=4, block_option=True),
    "fast-dllm-v2": FamilyCase(write_fast_dllm_v2, "model.layers.0.mlp.down_proj.weight", **_QWEN, block=3,
                               block_option=True, shift=True),
    "bd3lm": FamilyCase(write_bd3lm, "backbone.blocks.0.mlp.2.weight", **_DIT, block=4, own_tokenizer=False),
    "sedd": FamilyCase(write_sedd, "blocks.0.mlp.2.weight", "model.n_blocks", "blocks.{i}.", SEDD["blocks"],
                       own_tokenizer=False),
    # MoE: the router, as one expert's tensor is stacked with its siblings' and missing reads as mis-shaped
    "llada-moe": FamilyCase(write_llada_moe, "model.layers.0.mlp.gate.weight", **_QWEN, per_layer=("moe_layer_freq",)),
    "rnd1": FamilyCase(write_rnd1, "model.layers.0.mlp.gate.weight", **_QWEN, shift=True),
    "generic": FamilyCase(write_tiny_bert, "bert.encoder.layer.0.output.dense.weight", "num_hidden_layers",
                          "bert.encoder.layer.{i}.", 2),
}  # fmt: skip

BLOCK_FAMILIES = [name for name, case in FAMILY_CASES.items() if case.block is not None]
