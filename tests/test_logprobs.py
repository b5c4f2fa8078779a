"""Target log-probabilities over a wide vocabulary, normalised in chunks: the one-pass float32
log_softmax's values to float rounding, bit for bit below the chunk width."""

from __future__ import annotations

import math

import pytest
import torch

from itdd_cli.models.base import VOCAB_CHUNK, target_log_softmax


def _one_pass(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits.double(), dim=-1).gather(1, targets[:, None]).squeeze(1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_wide_vocabulary_gives_the_one_pass_values_to_float_rounding(dtype):
    generator = torch.Generator().manual_seed(0)
    vocab = 3 * VOCAB_CHUNK + 123  # a ragged last chunk
    logits = (torch.randn(64, vocab, generator=generator) * 4).to(dtype)
    logits[0, 5] = 60.0  # one dominant logit: log p ≈ 0
    logits[1, :] = -1e4  # all equal, very negative: log p = −log V exactly
    targets = torch.randint(0, vocab, (64,), generator=generator)
    targets[0], targets[1] = 5, 7
    chunked = target_log_softmax(logits, targets)
    assert chunked.dtype == torch.float32 and chunked.shape == (64,)
    exact = _one_pass(logits, targets)  # float64: the true value of these logits
    assert torch.allclose(chunked.double(), exact, rtol=1e-6, atol=1e-5)
    assert chunked[1].item() == pytest.approx(-math.log(vocab), rel=1e-6)


def test_a_masked_out_logit_and_a_narrow_vocabulary():
    logits = torch.randn(8, 100, generator=torch.Generator().manual_seed(1))
    logits[:, 3] = float("-inf")  # a family that never predicts a token (MDLM's mask)
    targets = torch.arange(8) + 10
    assert torch.equal(target_log_softmax(logits, targets),  # below the chunk width: the one-pass code itself
                       torch.log_softmax(logits, dim=-1).gather(1, targets[:, None]).squeeze(1))  # fmt: skip
    wide = torch.cat([logits, torch.full((8, VOCAB_CHUNK), -30.0)], dim=1)
    wide[:, 3] = float("-inf")
    assert torch.isfinite(target_log_softmax(wide, targets)).all()
    assert torch.allclose(target_log_softmax(wide, targets).double(), _one_pass(wide, targets), atol=1e-5)
