"""Tiny random checkpoints of the block-diffusion and MoE families in their hub formats:
config.json with the family's own model_type / architectures / auto_map and keys, safetensors
with the hub's parameter names, and a tokenizer."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from tests.support.family_checkpoints import _random, _write, char_tokenizer

# Shared geometry: 2 layers, 4 query heads of 16, 2 kv heads; vocab 48 (29 letters + specials).
SIZES = dict(d=64, heads=4, kv_heads=2, head_dim=16, layers=2, mlp=96, vocab=48, experts=8, top_k=2, expert_mlp=32)
EOS, MASK, PAD = 40, 41, 40


def _tokenizer(directory: Path, mask_text: str, **roles: str) -> None:
    char_tokenizer(directory, {"<|endoftext|>": EOS, mask_text: MASK}, SIZES["vocab"], eos_token="<|endoftext|>",
                   pad_token="<|endoftext|>", **roles)  # fmt: skip


def _attention(g: torch.Generator, p: str, qk_norm: bool, bias: bool) -> dict[str, torch.Tensor]:
    s = SIZES
    d, q, kv = s["d"], s["heads"] * s["head_dim"], s["kv_heads"] * s["head_dim"]
    w = {
        p + "self_attn.q_proj.weight": _random((q, d), g),
        p + "self_attn.k_proj.weight": _random((kv, d), g),
        p + "self_attn.v_proj.weight": _random((kv, d), g),
        p + "self_attn.o_proj.weight": _random((d, q), g),
    }
    if qk_norm:
        w |= {p + "self_attn.q_norm.weight": 1 + _random((s["head_dim"],), g),
              p + "self_attn.k_norm.weight": 1 + _random((s["head_dim"],), g)}  # fmt: skip
    if bias:
        w |= {p + "self_attn.q_proj.bias": _random((q,), g), p + "self_attn.k_proj.bias": _random((kv,), g),
              p + "self_attn.v_proj.bias": _random((kv,), g)}  # fmt: skip
    return w


def _mlp(g: torch.Generator, p: str, width: int) -> dict[str, torch.Tensor]:
    d = SIZES["d"]
    return {p + "gate_proj.weight": _random((width, d), g), p + "up_proj.weight": _random((width, d), g),
            p + "down_proj.weight": _random((d, width), g)}  # fmt: skip


def _experts(g: torch.Generator, p: str) -> dict[str, torch.Tensor]:
    s = SIZES
    w = {p + "gate.weight": _random((s["experts"], s["d"]), g, 1.0)}  # large: routing differs between tokens
    for j in range(s["experts"]):
        w |= _mlp(g, f"{p}experts.{j}.", s["expert_mlp"])
    return w


def _qwen_decoder(g: torch.Generator, qk_norm: bool, bias: bool, moe: bool) -> dict[str, torch.Tensor]:
    s = SIZES
    w = {"model.embed_tokens.weight": _random((s["vocab"], s["d"]), g, 1.0)}
    for i in range(s["layers"]):
        p = f"model.layers.{i}."
        w |= {p + "input_layernorm.weight": 1 + _random((s["d"],), g),
              p + "post_attention_layernorm.weight": 1 + _random((s["d"],), g)}  # fmt: skip
        w |= _attention(g, p, qk_norm, bias)
        w |= _experts(g, p + "mlp.") if moe else _mlp(g, p + "mlp.", s["mlp"])
    w |= {"model.norm.weight": 1 + _random((s["d"],), g), "lm_head.weight": _random((s["vocab"], s["d"]), g)}
    return w


def _qwen_config(**extra) -> dict:
    s = SIZES
    return {
        "vocab_size": s["vocab"], "hidden_size": s["d"], "intermediate_size": s["mlp"],
        "num_hidden_layers": s["layers"], "num_attention_heads": s["heads"], "num_key_value_heads": s["kv_heads"],
        "head_dim": s["head_dim"], "hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
        "max_position_embeddings": 256, "tie_word_embeddings": False, "attention_dropout": 0.0,
        "eos_token_id": EOS, "pad_token_id": PAD, "use_cache": False, "torch_dtype": "float32",
    } | extra  # fmt: skip


@contextmanager
def sized(**sizes: int) -> Iterator[None]:
    """Writers inside this block use `sizes` in place of SIZES entries (benches want bigger models)."""
    saved = dict(SIZES)
    SIZES.update(sizes)
    try:
        yield
    finally:
        SIZES.clear()
        SIZES.update(saved)


def write_sdar(directory: Path, seed: int = 0, block_size: int = 4) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    _tokenizer(directory, "<|MASK|>")  # SDAR's tokenizer names no BOS and adds none
    config = _qwen_config(  # config.json names <|endoftext|> as BOS, which SDAR's own code never puts in front
        model_type="sdar", architectures=["SDARForCausalLM"], block_size=block_size, attention_bias=False,
        bos_token_id=EOS,
        auto_map={"AutoConfig": "configuration_sdar.SDARConfig", "AutoModel": "modeling_sdar.SDARModel",
                  "AutoModelForCausalLM": "modeling_sdar.SDARForCausalLM"},
    )  # fmt: skip
    _write(directory, config, _qwen_decoder(torch.Generator().manual_seed(seed), qk_norm=True, bias=False, moe=False))
    return directory


def write_fast_dllm_v2(directory: Path, seed: int = 0) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    _tokenizer(directory, "|<MASK>|")
    config = _qwen_config(
        model_type="Fast_dLLM_Qwen", architectures=["Fast_dLLM_QwenForCausalLM"], bos_token_id=EOS,
        auto_map={"AutoConfig": "configuration.Fast_dLLM_QwenConfig",
                  "AutoModelForCausalLM": "modeling.Fast_dLLM_QwenForCausalLM"},
    )  # fmt: skip
    config.pop("head_dim")
    _write(directory, config, _qwen_decoder(torch.Generator().manual_seed(seed), qk_norm=False, bias=True, moe=False))
    return directory


def write_llada_moe(directory: Path, seed: int = 0) -> Path:
    """LLaDA-MoE's own config keys (model_type "llada"!) and Qwen3-MoE parameter names; no mask id in config."""
    directory.mkdir(parents=True, exist_ok=True)
    _tokenizer(directory, "<|mask|>")
    s = SIZES
    config = _qwen_config(
        model_type="llada", architectures=["LLaDAMoEModelLM"],
        auto_map={"AutoConfig": "configuration_lladamoe.LLaDAConfig",
                  "AutoModelForCausalLM": "modeling_lladamoe.LLaDAMoEModelLM"},
        dense_intermediate_size=s["mlp"], expert_intermediate_size=s["expert_mlp"],
        shared_expert_intermediate_size=None, num_experts=s["experts"], num_experts_per_tok=s["top_k"],
        moe_layer_freq=[1] * s["layers"], qk_layernorm=True, partial_rotary_factor=1, norm_topk_prob=None,
        moe_router_enable_expert_bias=False, moe_router_score_function="softmax", routed_scaling_factor=1,
        router_num_group=None, router_topk_group=None, rms_norm_eps=1e-5, attention_bias=False,
    )  # fmt: skip
    config.pop("intermediate_size")
    _write(directory, config, _qwen_decoder(torch.Generator().manual_seed(seed), qk_norm=True, bias=False, moe=True))
    return directory


def write_rnd1(directory: Path, seed: int = 0) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    _tokenizer(directory, "<|mask|>")
    s = SIZES
    config = _qwen_config(
        model_type="rnd1", architectures=["RND1LM"], mask_token_id=MASK, bos_token_id=None,
        auto_map={"AutoConfig": "configuration_rnd.RND1Config", "AutoModel": "modeling_rnd.RND1LM",
                  "AutoModelForMaskedLM": "modeling_rnd.RND1LM"},
        moe_intermediate_size=s["expert_mlp"], num_experts=s["experts"], num_experts_per_tok=s["top_k"],
        norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[], attention_bias=False, moe_backend="hf",
    )  # fmt: skip
    _write(directory, config, _qwen_decoder(torch.Generator().manual_seed(seed), qk_norm=True, bias=False, moe=True))
    return directory


LLADA2 = dict(experts=8, groups=4, topk_group=2, top_k=2, scaling=2.5, dense_layers=1, layers=3)


def write_llada2(directory: Path, seed: int = 0, block_size: int | None = None) -> Path:
    """Ling names: fused attention.query_key_value [q | k | v], attention.dense, query/key_layernorm,
    mlp.gate.expert_bias, per-expert weights, one shared expert; layer 0 dense; no block_size key."""
    directory.mkdir(parents=True, exist_ok=True)
    _tokenizer(directory, "<|mask|>")
    s, m = SIZES, LLADA2
    g = torch.Generator().manual_seed(seed)
    d, hd = s["d"], s["head_dim"]
    qkv_rows = (s["heads"] + 2 * s["kv_heads"]) * hd
    w = {"model.word_embeddings.weight": _random((s["vocab"], d), g, 1.0)}
    for i in range(m["layers"]):
        p = f"model.layers.{i}."
        w |= {
            p + "input_layernorm.weight": 1 + _random((d,), g),
            p + "post_attention_layernorm.weight": 1 + _random((d,), g),
            p + "attention.query_key_value.weight": _random((qkv_rows, d), g),
            p + "attention.dense.weight": _random((d, s["heads"] * hd), g),
            p + "attention.query_layernorm.weight": 1 + _random((hd,), g),
            p + "attention.key_layernorm.weight": 1 + _random((hd,), g),
        }
        if i < m["dense_layers"]:
            w |= _mlp(g, p + "mlp.", s["mlp"])
        else:
            w |= _experts(g, p + "mlp.")
            w[p + "mlp.gate.expert_bias"] = _random((s["experts"],), g, 0.3)
            w |= _mlp(g, p + "mlp.shared_experts.", s["expert_mlp"])
    w |= {"model.norm.weight": 1 + _random((d,), g), "lm_head.weight": _random((s["vocab"], d), g)}
    config = {
        "model_type": "llada2_moe", "architectures": ["LLaDA2MoeModelLM"],
        "auto_map": {"AutoConfig": "configuration_llada2_moe.LLaDA2MoeConfig",
                     "AutoModel": "modeling_llada2_moe.LLaDA2MoeModel",
                     "AutoModelForCausalLM": "modeling_llada2_moe.LLaDA2MoeModelLM"},
        "vocab_size": s["vocab"], "hidden_size": d, "intermediate_size": s["mlp"],
        "num_hidden_layers": m["layers"], "num_attention_heads": s["heads"], "num_key_value_heads": s["kv_heads"],
        "head_dim": hd, "hidden_act": "silu", "use_qkv_bias": False, "use_bias": False, "rms_norm_eps": 1e-6,
        "norm_head": False, "tie_word_embeddings": False, "max_position_embeddings": 256, "rope_theta": 600000.0,
        "rotary_dim": hd // 2, "partial_rotary_factor": 0.5, "num_experts": m["experts"], "num_shared_experts": 1,
        "num_experts_per_tok": m["top_k"], "n_group": m["groups"], "topk_group": m["topk_group"],
        "routed_scaling_factor": m["scaling"], "moe_intermediate_size": s["expert_mlp"],
        "first_k_dense_replace": m["dense_layers"], "score_function": "sigmoid", "norm_topk_prob": False,
        "pad_token_id": PAD, "eos_token_id": EOS, "use_cache": False, "torch_dtype": "float32",
    }  # fmt: skip
    if block_size is not None:
        config["block_size"] = block_size
    _write(directory, config, w)
    return directory


def rewrite_config(directory: Path, **changes) -> None:
    path = directory / "config.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | changes, indent=2))


def write_bd3lm(directory: Path, block_size: int = 4, seed: int = 0, settings: bool = True) -> Path:
    """BD3-LM's hub layout: MDLM's weights and keys plus block_size / cross_attn / adaln, no tokenizer;
    `settings`: the two scalar buffers its published class saves with the weights."""
    from safetensors.torch import load_file, save_file

    from tests.support.family_checkpoints import write_mdlm

    write_mdlm(directory, seed=seed)
    if settings:
        path = str(directory / "model.safetensors")
        tensors = load_file(path) | {"sampling_eps_min": torch.tensor(1e-3), "sampling_eps_max": torch.tensor(0.999)}
        save_file(tensors, path)
    rewrite_config(
        directory, model_type="bd3lm", architectures=["BD3LM"], block_size=block_size, cross_attn=True, adaln=True,
        attn_backend="flex", causal=False, var_min=True, sampling_eps_min=1e-3, sampling_eps_max=0.999,
        auto_map={"AutoConfig": "configuration_bd3lm.BD3LMConfig", "AutoModelForMaskedLM": "modeling_bd3lm.BD3LM"},
    )  # fmt: skip
    return directory
