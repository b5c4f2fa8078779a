"""Tiny random checkpoints in each family's original on-disk format (docs/formats.md)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

LETTERS = "abcdefghijklmnopqrstuvwxyz .,"


def char_tokenizer(directory: Path, specials: dict[str, int], size: int, letters: str = LETTERS,
                   **roles: str) -> dict[str, int]:  # fmt: skip
    """A fast character tokenizer with `specials` at fixed ids and `letters` filling the rest."""
    from tokenizers import AddedToken, Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = dict(specials)
    free = (i for i in range(size) if i not in specials.values())
    for letter in letters:
        vocab[letter] = next(free)
    backend = Tokenizer(models.WordLevel(vocab, unk_token=roles.get("unk_token", next(iter(specials)))))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), "isolated")
    backend.add_special_tokens([AddedToken(token, special=True) for token in specials])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, **roles)
    tokenizer.save_pretrained(directory)
    return vocab


def _random(shape: tuple[int, ...], generator: torch.Generator, scale: float = 0.2) -> torch.Tensor:
    return torch.randn(shape, generator=generator) * scale


def _write(directory: Path, config: dict, weights: dict[str, torch.Tensor]) -> None:
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    save_file({k: v.contiguous() for k, v in weights.items()}, str(directory / "model.safetensors"))


LLADA = dict(d=64, heads=4, kv_heads=2, layers=2, mlp=96, vocab=48, embedding=56, mask=50, theta=5e5)


def write_llada(directory: Path, tied: bool = False, seed: int = 0, **sizes: int) -> Path:
    """LLaDA's own config keys and weight names (model.transformer.*), plus its auto_map.

    `sizes` overrides entries of LLADA (d, heads, kv_heads, layers, mlp, vocab, embedding)."""
    directory.mkdir(parents=True, exist_ok=True)
    s = LLADA | sizes
    specials = {"<|startoftext|>": 40, "<|endoftext|>": 41, "<|mdm_mask|>": s["mask"]}
    char_tokenizer(directory, specials, max(s["vocab"], 51), bos_token="<|startoftext|>", eos_token="<|endoftext|>",
                   pad_token="<|endoftext|>")  # fmt: skip
    g = torch.Generator().manual_seed(seed)
    d, hd = s["d"], s["d"] // s["heads"]
    weights = {"model.transformer.wte.weight": _random((s["embedding"], d), g, 1.0)}
    for i in range(s["layers"]):
        p = f"model.transformer.blocks.{i}."
        weights |= {
            p + "attn_norm.weight": 1 + _random((d,), g),
            p + "q_proj.weight": _random((d, d), g),
            p + "k_proj.weight": _random((s["kv_heads"] * hd, d), g),
            p + "v_proj.weight": _random((s["kv_heads"] * hd, d), g),
            p + "attn_out.weight": _random((d, d), g),
            p + "ff_norm.weight": 1 + _random((d,), g),
            p + "ff_proj.weight": _random((s["mlp"], d), g),
            p + "up_proj.weight": _random((s["mlp"], d), g),
            p + "ff_out.weight": _random((d, s["mlp"]), g),
        }
    weights["model.transformer.ln_f.weight"] = 1 + _random((d,), g)
    if not tied:
        weights["model.transformer.ff_out.weight"] = _random((s["embedding"], d), g)
    config = {
        "model_type": "llada",
        "architectures": ["LLaDAModelLM"],
        "auto_map": {
            "AutoConfig": "configuration_llada.LLaDAConfig",
            "AutoModel": "modeling_llada.LLaDAModelLM",
            "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM",
        },
        "d_model": d,
        "n_layers": s["layers"],
        "n_heads": s["heads"],
        "n_kv_heads": s["kv_heads"],
        "multi_query_attention": None,
        "mlp_hidden_size": s["mlp"],
        "mlp_ratio": 4,
        "embedding_size": s["embedding"],
        "vocab_size": s["vocab"],
        "block_type": "llama",
        "activation_type": "silu",
        "layer_norm_type": "rms",
        "rms_norm_eps": 1e-5,
        "layer_norm_with_affine": True,
        "bias_for_layer_norm": False,
        "include_bias": False,
        "include_qkv_bias": False,
        "rope": True,
        "rope_theta": s["theta"],
        "rope_full_precision": True,
        "weight_tying": tied,
        "max_sequence_length": s.get("max_length", 64),
        "mask_token_id": s["mask"],
        "eos_token_id": 41,
        "pad_token_id": 41,
        "alibi": False,
        "attention_layer_norm": False,
        "input_emb_norm": False,
        "scale_logits": False,
        "flash_attention": False,
        "use_cache": False,
    }
    _write(directory, config, weights)
    return directory


DREAM = dict(d=64, heads=4, kv_heads=2, layers=2, mlp=96, vocab=56, mask=52, theta=1e6)


def write_dream(directory: Path, seed: int = 0) -> Path:
    """Dream's config keys (model_type "Dream", auto_map, mask_token_id) with Qwen2 weight names."""
    directory.mkdir(parents=True, exist_ok=True)
    s = DREAM
    specials = {"<|endoftext|>": 48, "<|beginoftext|>": 51, "<|mask|>": s["mask"]}
    char_tokenizer(directory, specials, s["vocab"], bos_token="<|beginoftext|>", eos_token="<|endoftext|>",
                   pad_token="<|endoftext|>", mask_token="<|mask|>")  # fmt: skip
    tokenizer_config = json.loads((directory / "tokenizer_config.json").read_text())
    tokenizer_config |= {"tokenizer_class": "DreamTokenizer",
                         "auto_map": {"AutoTokenizer": ["tokenization_dream.DreamTokenizer", None]}}  # fmt: skip
    (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    g = torch.Generator().manual_seed(seed)
    d, kv = s["d"], s["kv_heads"] * (s["d"] // s["heads"])
    weights = {"model.embed_tokens.weight": _random((s["vocab"], d), g, 1.0)}
    for i in range(s["layers"]):
        p = f"model.layers.{i}."
        weights |= {
            p + "input_layernorm.weight": 1 + _random((d,), g),
            p + "self_attn.q_proj.weight": _random((d, d), g),
            p + "self_attn.q_proj.bias": _random((d,), g),
            p + "self_attn.k_proj.weight": _random((kv, d), g),
            p + "self_attn.k_proj.bias": _random((kv,), g),
            p + "self_attn.v_proj.weight": _random((kv, d), g),
            p + "self_attn.v_proj.bias": _random((kv,), g),
            p + "self_attn.o_proj.weight": _random((d, d), g),
            p + "post_attention_layernorm.weight": 1 + _random((d,), g),
            p + "mlp.gate_proj.weight": _random((s["mlp"], d), g),
            p + "mlp.up_proj.weight": _random((s["mlp"], d), g),
            p + "mlp.down_proj.weight": _random((d, s["mlp"]), g),
        }
    weights |= {"model.norm.weight": 1 + _random((d,), g), "lm_head.weight": _random((s["vocab"], d), g)}
    config = {
        "model_type": "Dream",
        "architectures": ["DreamModel"],
        "auto_map": {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"},
        "hidden_size": d,
        "intermediate_size": s["mlp"],
        "num_hidden_layers": s["layers"],
        "num_attention_heads": s["heads"],
        "num_key_value_heads": s["kv_heads"],
        "hidden_act": "silu",
        "rms_norm_eps": 1e-6,
        "rope_theta": s["theta"],
        "rope_scaling": None,
        "max_position_embeddings": 64,
        "vocab_size": s["vocab"],
        "tie_word_embeddings": False,
        "use_sliding_window": False,
        "sliding_window": None,
        "max_window_layers": s["layers"],
        "attention_dropout": 0.0,
        "mask_token_id": s["mask"],
        "pad_token_id": 48,
        "bos_token_id": 48,
        "eos_token_id": 48,
        "use_cache": False,
        "torch_dtype": "float32",
    }
    _write(directory, config, weights)
    return directory


MDLM = dict(d=64, heads=4, blocks=2, cond=32, vocab=41)


def write_gpt2_like_tokenizer(directory: Path) -> Path:
    """Stands in for GPT-2's tokenizer (MDLM repositories ship none): <|endoftext|> = 0."""
    directory.mkdir(parents=True, exist_ok=True)
    char_tokenizer(directory, {"<|endoftext|>": 0}, MDLM["vocab"] - 1, bos_token="<|endoftext|>",
                   eos_token="<|endoftext|>", unk_token="<|endoftext|>")  # fmt: skip
    return directory


def write_mdlm(directory: Path, seed: int = 0, time_conditioning: bool = False) -> Path:
    """MDLM's hub layout: config.json with auto_map, `backbone.*` weights, no tokenizer files."""
    directory.mkdir(parents=True, exist_ok=True)
    s = MDLM
    g = torch.Generator().manual_seed(seed)
    d, c = s["d"], s["cond"]
    weights = dit_weights(s["vocab"], s, g, "backbone.")
    config = {
        "architectures": ["MDLM"],
        "auto_map": {"AutoConfig": "configuration_mdlm.MDLMConfig", "AutoModelForMaskedLM": "modeling_mdlm.MDLM"},
        "model_type": "mdlm",
        "vocab_size": s["vocab"],
        "hidden_dim": d,
        "n_blocks": s["blocks"],
        "n_heads": s["heads"],
        "cond_dim": c,
        "model_length": 32,
        "dropout": 0.1,
        "time_conditioning": time_conditioning,
        "return_dict": False,
        "torch_dtype": "float32",
    }
    _write(directory, config, weights)
    return directory


SEDD = dict(d=64, heads=4, blocks=2, cond=32, tokens=40)  # tokens: the GPT-2-like tokenizer's 40 ids


def dit_weights(vocab: int, s: dict, g: torch.Generator, prefix: str = "") -> dict[str, torch.Tensor]:
    """The DiT's tensors (MDLM under `backbone.`, SEDD unprefixed), drawn in one fixed order from `g`."""
    d, c, hd = s["d"], s["cond"], s["d"] // s["heads"]
    weights = {
        "vocab_embed.embedding": _random((vocab, d), g, 1.0),
        "sigma_map.mlp.0.weight": _random((c, 256), g),
        "sigma_map.mlp.0.bias": _random((c,), g),
        "sigma_map.mlp.2.weight": _random((c, c), g),
        "sigma_map.mlp.2.bias": _random((c,), g),
        "rotary_emb.inv_freq": 1.0 / 10000 ** (torch.arange(0, hd, 2).float() / hd),
        "output_layer.norm_final.weight": 1 + _random((d,), g),
        "output_layer.linear.weight": _random((vocab, d), g),
        "output_layer.linear.bias": _random((vocab,), g),
        "output_layer.adaLN_modulation.weight": _random((2 * d, c), g),
        "output_layer.adaLN_modulation.bias": _random((2 * d,), g),
    }
    for i in range(s["blocks"]):
        p = f"blocks.{i}."
        weights |= {
            p + "norm1.weight": 1 + _random((d,), g),
            p + "norm2.weight": 1 + _random((d,), g),
            p + "attn_qkv.weight": _random((3 * d, d), g),
            p + "attn_out.weight": _random((d, d), g),
            p + "mlp.0.weight": _random((4 * d, d), g),
            p + "mlp.0.bias": _random((4 * d,), g),
            p + "mlp.2.weight": _random((d, 4 * d), g),
            p + "mlp.2.bias": _random((d,), g),
            p + "adaLN_modulation.weight": _random((6 * d, c), g),
            p + "adaLN_modulation.bias": _random((6 * d,), g),
        }
    return {prefix + name: tensor for name, tensor in weights.items()}


def sedd_weights(vocab: int, seed: int = 0, **sizes: int) -> dict[str, torch.Tensor]:
    """SEDD's DiT tensors in the names `SEDD.state_dict()` publishes (no prefix; `rotary_emb.inv_freq` kept)."""
    return dit_weights(vocab, SEDD | sizes, torch.Generator().manual_seed(seed))


def sedd_config(graph: str = "absorb", noise: str = "loglinear", scale_by_sigma: bool | None = None,
                length: int = 32, **sizes: int) -> dict:  # fmt: skip
    """The hydra config SEDD's hub mixin saves as config.json (training/data/optim keys included, as on the hub)."""
    s = SEDD | sizes
    return {
        "ngpus": 8,
        "tokens": s["tokens"],
        "training": {"batch_size": 512, "accum": 1, "n_iters": 1300001, "ema": 0.9999, "weight": "standard"},
        "data": {"train": "openwebtext", "valid": "wikitext103", "cache_dir": "data"},
        "graph": {"type": graph, "file": "data", "report_all": False},
        "noise": {"type": noise, "sigma_min": 1e-4, "sigma_max": 20},
        "sampling": {"predictor": "euler", "steps": 128, "noise_removal": True},
        "eval": {"batch_size": 512, "perplexity": True, "perplexity_batch_size": 32},
        "optim": {"weight_decay": 0, "optimizer": "AdamW", "lr": 3e-4, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8},
        "model": {
            "name": "small", "type": "ddit", "hidden_size": s["d"], "cond_dim": s["cond"], "length": length,
            "n_blocks": s["blocks"], "n_heads": s["heads"],
            "scale_by_sigma": graph == "absorb" if scale_by_sigma is None else scale_by_sigma, "dropout": 0.1,
        },
    }  # fmt: skip


def write_sedd(directory: Path, graph: str = "absorb", noise: str = "loglinear", seed: int = 0,
               pickle: bool = False) -> Path:  # fmt: skip
    """SEDD's hub layout: the hydra config as config.json, model.safetensors (or pytorch_model.bin), no tokenizer."""
    directory.mkdir(parents=True, exist_ok=True)
    config = sedd_config(graph, noise)
    weights = sedd_weights(config["tokens"] + (graph == "absorb"), seed)
    if pickle:
        (directory / "config.json").write_text(json.dumps(config, indent=2))
        torch.save(weights, directory / "pytorch_model.bin")
    else:
        _write(directory, config, weights)
    return directory


BERT_LETTERS = "abcdefgh "


def write_tiny_bert(directory: Path, max_positions: int = 24) -> Path:
    """A BertForMaskedLM as transformers saves it, with a [CLS] … [SEP] character tokenizer (family generic)."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertForMaskedLM, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {token: i for i, token in enumerate([*specials, *BERT_LETTERS])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), "isolated")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        **{f"{name}_token": f"[{name.upper()}]" for name in ("pad", "unk", "cls", "sep", "mask")},
    )
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=48,
        max_position_embeddings=max_positions,
        pad_token_id=0,
    )
    BertForMaskedLM(config).eval().save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
