"""An exact-conditional masked LM, shipped as a checkpoint's remote code (`auto_map`).

For a sequence of length T over an alphabet of A letters the model's distribution is

    p_T(x) ∝ exp( Σ_i θ[i, x_i] + Σ_i φ[x_i, x_{i+1}] ),

and its forward pass returns, at every masked position, the exact conditional
log p(x_i = a | unmasked tokens) by enumerating all A^T sequences. Everything I-MDCE needs is
therefore exact, and −log p(x) is known in closed form. This file must stay self-contained:
it is copied next to config.json and imported by transformers with trust_remote_code.
"""

from __future__ import annotations

import itertools

import torch
from transformers import PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput


class OracleConfig(PreTrainedConfig):
    model_type = "itdd-oracle"

    def __init__(
        self,
        alphabet_size: int = 4,
        first_letter_id: int = 3,
        vocab_size: int = 7,
        mask_token_id: int = 1,
        pad_token_id: int = 0,
        max_position_embeddings: int = 8,
        **kwargs,
    ) -> None:
        self.alphabet_size = alphabet_size
        self.first_letter_id = first_letter_id
        self.vocab_size = vocab_size
        self.mask_token_id = mask_token_id
        self.max_position_embeddings = max_position_embeddings
        super().__init__(pad_token_id=pad_token_id, **kwargs)


class OracleForMaskedLM(PreTrainedModel):
    config_class = OracleConfig
    base_model_prefix = "oracle"
    all_tied_weights_keys: dict = {}

    def __init__(self, config: OracleConfig) -> None:
        super().__init__(config)
        size = config.alphabet_size
        self.theta = torch.nn.Parameter(torch.zeros(config.max_position_embeddings, size))
        self.phi = torch.nn.Parameter(torch.zeros(size, size))
        self._tables: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.post_init()

    def _init_weights(self, module: torch.nn.Module) -> None:
        pass  # the weights always come from the checkpoint

    def _table(self, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """All A^T sequences (S, T) and their log-probabilities (S,), in float64."""
        if length not in self._tables:
            size = self.config.alphabet_size
            seqs = torch.tensor(list(itertools.product(range(size), repeat=length)))
            theta = self.theta.detach().double().cpu()
            phi = self.phi.detach().double().cpu()
            energy = theta[torch.arange(length), seqs].sum(-1)
            if length > 1:
                energy = energy + phi[seqs[:, :-1], seqs[:, 1:]].sum(-1)
            self._tables[length] = (seqs, energy - torch.logsumexp(energy, 0))
        return self._tables[length]

    def forward(self, input_ids=None, attention_mask=None, **kwargs) -> MaskedLMOutput:
        batch, width = input_ids.shape
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        cfg = self.config
        size, first = cfg.alphabet_size, cfg.first_letter_id
        logits = torch.full((batch, width, cfg.vocab_size), float("-inf"), dtype=torch.float64)
        for row in range(batch):
            positions = attention_mask[row].nonzero().flatten().cpu()
            tokens = input_ids[row, positions].cpu()
            seqs, logp = self._table(len(positions))
            masked = tokens == cfg.mask_token_id
            letters = tokens - first
            consistent = (seqs[:, ~masked] == letters[~masked]).all(-1)
            weights = torch.where(consistent, logp, float("-inf")).exp()
            marginal = torch.zeros(len(positions), size, dtype=torch.float64)
            marginal.scatter_add_(1, seqs.T, weights.expand(len(positions), -1).contiguous())
            marginal = (marginal / weights.sum()).log()
            logits[row, positions, first : first + size] = marginal
        return MaskedLMOutput(logits=logits.to(self.theta.dtype).to(input_ids.device))
