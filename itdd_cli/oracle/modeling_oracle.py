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
        ids, attended = input_ids.cpu(), attention_mask.cpu().bool()
        lengths = attended.sum(-1)
        logits = torch.full((batch, width, cfg.vocab_size), float("-inf"), dtype=torch.float64)
        for length in lengths.unique().tolist():  # rows of one length share a table
            rows = (lengths == length).nonzero().flatten()
            positions = attended[rows].nonzero()[:, 1].view(len(rows), length)  # (R, T)
            tokens = ids[rows[:, None], positions]  # (R, T)
            seqs, logp = self._table(length)  # (S, T), (S,)
            masked = tokens == cfg.mask_token_id
            agrees = (seqs[None] == (tokens - first)[:, None]) | masked[:, None]  # (R, S, T)
            weights = torch.where(agrees.all(-1), logp[None], float("-inf")).softmax(-1)  # (R, S)
            onehot = torch.nn.functional.one_hot(seqs, size).double()  # (S, T, A)
            marginal = torch.einsum("rs,sta->rta", weights, onehot)  # (R, T, A)
            logits[rows[:, None], positions, first : first + size] = marginal.log()
        return MaskedLMOutput(logits=logits.to(self.theta.dtype).to(input_ids.device))
