"""MDLM (`kuleshov-group/mdlm-owt` and its fp32 sibling): the DiT backbone, loaded natively.

Quirks, all fixed here: weights sit under `backbone.`; the time input is always zero (the
released checkpoints ignore it: `time_conditioning: false`); the mask column (`vocab_size − 1`,
not in the GPT-2 tokenizer) is suppressed before the softmax, as in MDLM's SUBS
parameterisation; the hub repositories ship no tokenizer, so GPT-2's is the default when the
checkpoint has none of its own (`--tokenizer` names another). The model has no attention mask,
so `pads=False` tells the engine never to batch rows of different lengths. Documents are
wrapped in `<|endoftext|>` at both ends, as in its OpenWebText training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from itdd_cli.errors import ModelError
from itdd_cli.models.base import ScoringModel, target_log_softmax
from itdd_cli.models.decoder import require
from itdd_cli.models.dit import DiT, dit_info, frame_by_eos, load_strictly
from itdd_cli.models.loading import LoadOptions, load_tokenizer

DEFAULT_TOKENIZER = "gpt2"
PREFIX = "backbone."


def _state_dict(options: LoadOptions) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors in the checkpoint's own names (`backbone.` included)."""
    from safetensors.torch import load_file

    local = Path(options.model)
    try:
        if local.is_dir() and options.allow_pickle and not (local / "model.safetensors").exists():
            return torch.load(local / "pytorch_model.bin", map_location="cpu", weights_only=True)
        if local.is_dir():
            path = local / "model.safetensors"
        else:
            from huggingface_hub import hf_hub_download

            path = Path(hf_hub_download(options.model, "model.safetensors", **options.hub_kwargs()))
        return load_file(str(path))
    except Exception as error:
        raise ModelError(f"cannot read the MDLM weights of {options.model}: {error}") from error


class MDLMAdapter(ScoringModel):
    family = "mdlm"
    settings_tensors: tuple[str, ...] = ()  # stored beside the weights, never read by the DiT (see BD3-LM)

    def __init__(self, options: LoadOptions, config: dict[str, Any]) -> None:
        self.tokenizer = load_tokenizer(options, default=DEFAULT_TOKENIZER)
        vocab = require(config, "vocab_size", self.family)
        self.model = DiT(
            vocab_size=vocab,
            dim=require(config, "hidden_dim", self.family),
            blocks=require(config, "n_blocks", self.family),
            heads=require(config, "n_heads", self.family),
            cond_dim=require(config, "cond_dim", self.family),
        )
        stored = self.without_settings(options.model, _state_dict(options))
        weights = {key.removeprefix(PREFIX): value for key, value in stored.items()}
        own_name = {key.removeprefix(PREFIX): key for key in stored}  # an unknown tensor is named as stored
        load_strictly(self.model, weights, options, rename=lambda name: own_name.get(name, PREFIX + name))
        self.mask_id = int(config.get("mask_token_id", vocab - 1))
        frame_by_eos(self)
        length = int(config.get("model_length", 1024))
        self.info = dit_info(self, options, length, "; time input 0; mask logit suppressed", vocab)

    def without_settings(self, model: str, weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The weights less the scalar settings this family's class saves with them; any other
        unknown tensor stays, to be refused by name."""
        for name in self.settings_tensors:
            if name in weights and weights[name].numel() != 1:
                raise ModelError(f"{model}: the weights do not match config.json — {name} holds "
                                 f"{weights[name].numel()} values, not one setting")  # fmt: skip
        return {name: tensor for name, tensor in weights.items() if name not in self.settings_tensors}

    @torch.inference_mode()
    def target_logprobs(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, score_mask: torch.Tensor,
                              targets: torch.Tensor,
                        guidance: float | None = None) -> torch.Tensor:  # fmt: skip
        if not bool(attention_mask.all()):
            raise ValueError("MDLM has no attention mask: rows of one batch must share their length")
        device = self.model.vocab_embed.embedding.device
        ids = input_ids.to(device)
        sigma = torch.zeros(ids.shape[0], device=device)
        hidden, c = self.model.hidden(ids, sigma)  # (B, T, D), (B, C)
        where = score_mask.to(device)
        rows = where.nonzero()[:, 0]  # (P,) the sequence of each scored position
        logits = self.model.output_layer(hidden[where], c[rows]).float()  # (P, V)
        logits[:, self.mask_id] = float("-inf")  # SUBS: the mask is never a prediction
        return target_log_softmax(logits, targets[score_mask], guidance)
