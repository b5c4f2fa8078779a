"""SEDD (score-entropy discrete diffusion, `louaaron/sedd-small`/`-medium`): the DiT, loaded natively.

The checkpoint is the hub mixin's layout: config.json holds the hydra config (`tokens`,
`graph.type` absorb|uniform, `noise.type` loglinear|geometric, `model.*`), the weights are
`model.safetensors` (older uploads: `pytorch_model.bin`, read with `weights_only=True` under
--allow-pickle) with the DiT's own names, no prefix. The network is MDLM's DiT (models/dit.py:
same names, shapes and maths), conditioned on σ. Its output is a log-score: with
`scale_by_sigma` it is lowered by log(e^σ − 1) + log(V − 1), and the current token's entry is 0.

Absorbing graph: the vocabulary is `tokens + 1`, the mask the last id; the score at a masked
position is e^{−σ}/(1 − e^{−σ}) · p(y | unmasked), so renormalising exp(score) over the tokens
gives the conditional the time-free estimators need (`target_logprobs`, at the σ whose masking
chance is the row's mask rate). Uniform graph: the score implies no such conditional; only the
time-integral estimator (`--estimator dse`) scores it. Documents are wrapped in
`<|endoftext|>` at both ends, as in SEDD's OpenWebText training (EOS after each document).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from itdd_cli.errors import ModelError, UsageError
from itdd_cli.estimators.dse import Schedule, expm1_sigma, sigma_of_mask_rate
from itdd_cli.estimators.kinds import Estimator
from itdd_cli.models.base import ScoringModel, target_log_softmax
from itdd_cli.models.dit import DiT, dit_info, frame_by_eos, load_strictly
from itdd_cli.models.loading import LoadOptions, load_tokenizer

DEFAULT_TOKENIZER = "gpt2"
GRAPHS = ("absorb", "uniform")
SCHEDULES = ("loglinear", "geometric")


def _section(config: dict[str, Any], name: str) -> dict[str, Any]:
    section = config.get(name)
    if not isinstance(section, dict):
        raise ModelError(f"SEDD config.json has no '{name}' section (the hydra config the hub mixin saves)")
    return section


def _schedule(noise: dict[str, Any]) -> Schedule:
    kind = noise.get("type")
    if kind not in SCHEDULES:
        raise ModelError(f"SEDD config.json: noise.type {kind!r} is not one of {', '.join(SCHEDULES)}")
    if kind == "loglinear":
        return Schedule("loglinear")
    low, high = float(noise.get("sigma_min", 1e-3)), float(noise.get("sigma_max", 1.0))  # SEDD's defaults
    if not 0 < low < high:
        raise ModelError(f"SEDD config.json: the geometric noise needs 0 < sigma_min < sigma_max (got {low}, {high})")
    return Schedule("geometric", sigma_min=low, sigma_max=high)


def _state_dict(options: LoadOptions) -> dict[str, torch.Tensor]:
    """The tensors in their published names: model.safetensors, else (under --allow-pickle)
    pytorch_model.bin read as tensors only."""
    from safetensors.torch import load_file

    local = Path(options.model)
    try:
        if local.is_dir():
            if (local / "model.safetensors").exists() or not options.allow_pickle:
                return load_file(str(local / "model.safetensors"))
            return torch.load(local / "pytorch_model.bin", map_location="cpu", weights_only=True)
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        try:
            return load_file(hf_hub_download(options.model, "model.safetensors", **options.hub_kwargs()))
        except EntryNotFoundError:
            if not options.allow_pickle:
                raise ModelError(f"{options.model} has only pickle weights (pytorch_model.bin); pass --allow-pickle "
                                 "to read them as tensors only") from None  # fmt: skip
            path = hf_hub_download(options.model, "pytorch_model.bin", **options.hub_kwargs())
            return torch.load(path, map_location="cpu", weights_only=True)
    except ModelError:
        raise
    except Exception as error:
        raise ModelError(f"cannot read the SEDD weights of {options.model}: {error}") from error


class SEDDAdapter(ScoringModel):

    guides = False  # --cfg: its conditionals come from the score at a matched σ, with no twin rows
    family = "sedd"

    def __init__(self, options: LoadOptions, config: dict[str, Any]) -> None:
        graph, noise, model = (_section(config, name) for name in ("graph", "noise", "model"))
        if graph.get("type") not in GRAPHS:
            raise ModelError(f"SEDD config.json: graph.type {graph.get('type')!r} is not one of {', '.join(GRAPHS)}")
        self.absorbing = graph["type"] == "absorb"
        self.schedule = _schedule(noise)
        tokens = config.get("tokens")
        if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 2:
            raise ModelError(f"SEDD config.json: 'tokens' must be a vocabulary size (got {tokens!r})")
        sizes = {key: model.get(key) for key in ("hidden_size", "n_heads", "n_blocks", "cond_dim")}
        bad = [key for key, value in sizes.items() if type(value) is not int or value < 1]
        if bad or sizes["hidden_size"] % sizes["n_heads"]:
            raise ModelError(f"SEDD config.json: model.{(bad or ['hidden_size'])[0]} is missing or invalid")
        self.scale_by_sigma = bool(model.get("scale_by_sigma", False))
        if self.scale_by_sigma and not self.absorbing:  # SEDD asserts the same
            raise ModelError("SEDD config.json: scale_by_sigma is only defined for the absorbing graph")
        self.vocab = tokens + 1 if self.absorbing else tokens
        self.tokenizer = load_tokenizer(options, default=DEFAULT_TOKENIZER)
        self.model = DiT(self.vocab, sizes["hidden_size"], sizes["n_blocks"], sizes["n_heads"], sizes["cond_dim"])
        weights = _state_dict(options)
        load_strictly(self.model, weights, options)
        frame_by_eos(self)
        eos = self.tokenizer.eos_token_id
        # the uniform graph has no mask; its slot names EOS, a special token never masked (nothing is)
        self.mask_id = tokens if self.absorbing else int(eos if eos is not None else 0)
        self.info = dit_info(self, options, int(model.get("length", 1024)),
                             f"; {graph['type']} graph, {self.schedule.kind} noise", self.vocab)  # fmt: skip

    def check_estimator(self, estimator: Estimator) -> None:
        if not self.absorbing and not estimator.needs_scores:
            raise UsageError(f"--estimator {estimator.value}: {self.info.name} is a uniform-graph SEDD model, whose "
                             "score implies no masked conditional — use --estimator dse")  # fmt: skip

    @torch.inference_mode()
    def scores_at(self, ids: torch.Tensor, sigma: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
        """The published log-scores (P, V), float32, at the positions `where` (N, T) of rows `ids`
        (N, T) at total noise σ (N,); the output layer runs only there."""
        device = self.model.vocab_embed.embedding.device
        ids, where, sigma = ids.to(device), where.to(device), sigma.to(device)
        hidden, c = self.model.hidden(ids, sigma.to(torch.float32))
        rows = where.nonzero()[:, 0]
        score = self.model.output_layer(hidden[where], c[rows]).float()  # (P, V)
        if self.scale_by_sigma:
            score = score - expm1_sigma(sigma.double()).log().float()[rows, None] - math.log(self.vocab - 1)
        return score.scatter(-1, ids[where][:, None], 0.0)

    @torch.inference_mode()
    def target_logprobs(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        score_mask: torch.Tensor,
        targets: torch.Tensor,
    ) -> torch.Tensor:
        if not self.absorbing:
            raise UsageError("a uniform-graph SEDD model has no masked conditional; use --estimator dse")
        if not bool(attention_mask.all()):
            raise ValueError("SEDD has no attention mask: rows of one batch must share their length")
        rate = (input_ids == self.mask_id).sum(dim=1).double() / input_ids.shape[1]
        sigma = sigma_of_mask_rate(rate, self.schedule)
        score = self.scores_at(input_ids, sigma, score_mask)
        score[:, self.mask_id] = float("-inf")  # exp(score)·(e^σ − 1) over the tokens: the constant cancels
        return target_log_softmax(score, targets[score_mask])
