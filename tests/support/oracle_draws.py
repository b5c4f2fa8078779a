"""Score records in-process on the oracle's exact conditionals, without a checkpoint or the engine.

Every conditional −log p(x_i | unmasked letters) of a string comes from enumerating the oracle's
distribution (`OracleDistribution`), once per string: a table of each masked set's per-position
losses. `RecordDraws` then runs as the runner runs it — noise, round plans, tallies, coupling —
with the engine replaced by table look-ups, so thousands of seeds take seconds.
"""

from __future__ import annotations

import itertools
from functools import cache

import torch

from itdd_cli.core.settings import Settings
from itdd_cli.models.base import Framed
from itdd_cli.oracle import ALPHABET, OracleDistribution
from itdd_cli.scoring.draws import RecordDraws

FIRST_LETTER_ID = 3  # the oracle tokenizer's id of `a` ([PAD], [MASK], [UNK] come first)


@cache
def loss_table(distribution: OracleDistribution, prompt: str, response: str) -> torch.Tensor:
    """(2^L, L) float64: row b holds each scored position's loss when the set with bits b is masked."""
    text = prompt + response
    letters = torch.tensor([ALPHABET.index(c) for c in text])
    size, length = len(ALPHABET), len(response)
    strings = torch.tensor(list(itertools.product(range(size), repeat=len(text))))  # (A^T, T)
    theta, phi = distribution.theta, distribution.phi
    energy = theta[torch.arange(len(text)), strings].sum(1)  # (A^T,)
    if len(text) > 1:
        energy = energy + phi[strings[:, :-1], strings[:, 1:]].sum(1)
    agrees = strings == letters  # (A^T, T)
    table = torch.zeros((2**length, length), dtype=torch.float64)
    for bits in range(1, 2**length):
        masked = [len(prompt) + i for i in range(length) if bits >> i & 1]
        known = [i for i in range(len(text)) if i not in masked]
        context = agrees[:, known].all(1)
        total = torch.logsumexp(energy[context], 0)
        for position in masked:
            table[bits, position - len(prompt)] = total - torch.logsumexp(energy[context & agrees[:, position]], 0)
    return table


def _ids(text: str) -> list[int]:
    return [FIRST_LETTER_ID + ALPHABET.index(c) for c in text]


def draws_for(prompt: str, responses: list[str], settings: Settings) -> RecordDraws:
    framed = [Framed(_ids(prompt + r), len(prompt), len(r)) for r in responses]
    return RecordDraws(_ids(prompt), framed, settings)


def run(distribution: OracleDistribution, prompt: str, responses: list[str], settings: Settings) -> RecordDraws:
    """All rounds of one record (one side, a pair, or k choices), losses from the exact table."""
    draws = draws_for(prompt, responses, settings)
    while True:
        losses = []
        for response, job in zip(responses, draws.jobs(), strict=True):
            table = loss_table(distribution, prompt, response)
            weights = 2 ** torch.arange(job.masks.shape[1])
            rows = table[(job.masks.long() * weights).sum(1)]  # (N, L)
            scored = job.masks if job.scored is None else job.scored
            losses.append(rows * scored)
        draws.absorb(losses)
        if not draws.next_round():
            return draws
