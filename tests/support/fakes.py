"""Models with known answers, built for the tests."""

from __future__ import annotations

import math

import torch

from itdd_cli.estimators import Estimator
from itdd_cli.models.base import Framed, ModelInfo, ScoringModel
from itdd_cli.scoring.runner import Command, Settings, score


def fake_info(vocab_size: int, max_length: int | None = None) -> ModelInfo:
    return ModelInfo(
        name="fake",
        family="fake",
        parameters=0,
        dtype="float32",
        device="cpu",
        mask_id=0,
        pad_id=1,
        max_length=max_length,
        shifted_logits=False,
        time_input=False,
        framing="none",
        vocab_size=vocab_size,
    )


class UniformModel(ScoringModel):
    """Uniform logits over V tokens: every masked token costs exactly log V.

    Characters map to ids 2.. so the mask (0) and pad (1) ids never collide with text.
    """

    def __init__(self, vocab_size: int = 50, max_length: int | None = None) -> None:
        self.info = fake_info(vocab_size, max_length)
        self.rows_seen: list[int] = []

    def encode(self, text: str) -> list[int]:
        return [2 + ord(c) % (self.info.vocab_size - 2) for c in text]

    def frame(self, context: list[int], scored: list[int]) -> Framed:
        return Framed([*context, *scored], len(context), len(scored))

    def token_strings(self, text: str, ids: list[int]) -> list[str]:
        return list(text)  # one id per character

    def target_logprobs(self, input_ids, attention_mask, score_mask, targets):  # type: ignore[no-untyped-def]
        self.rows_seen.append(input_ids.shape[0])
        count = int(score_mask.sum())
        return torch.full((count,), -math.log(self.info.vocab_size), dtype=torch.float32)


def uniform_rows(estimator: Estimator, texts: list[str], samples: int = 64, seed: int = 0,
                 batch_rows: int | None = None) -> list[dict]:  # fmt: skip
    """`nll` rows of `texts` under UniformModel(50), where every text's true NLL is L·log 50."""
    objects = [(i + 1, {"text": t}) for i, t in enumerate(texts)]
    settings = Settings(estimator=estimator, samples=samples, seed=seed, batch_rows=batch_rows)
    return list(score(Command.nll, objects, UniformModel(vocab_size=50), settings))
