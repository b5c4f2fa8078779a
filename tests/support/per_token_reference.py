"""An independent per-token decomposition on the oracle, by brute force from θ and φ alone.

    c_l = Σ_k (1/k) · E_{|M|=k} [ 1{l∈M} · −log p(x_l | x_{M^c}) ]

over uniform k-subsets M of the scored positions (the prompt is never masked), where
p(x_l | x_{M^c}) marginalises the other masked positions. Shares no code with itdd.
"""

from __future__ import annotations

import functools
import itertools
import math

import torch

from itdd_cli.oracle import ALPHABET, OracleDistribution


def per_token_shares(distribution: OracleDistribution, prompt: str, response: str) -> list[float]:
    letters = [ALPHABET.index(c) for c in prompt + response]
    first, length, width = len(prompt), len(response), len(prompt + response)
    strings = torch.tensor(list(itertools.product(range(len(ALPHABET)), repeat=width)))  # (S, T) every string
    theta, phi = distribution.theta.double(), distribution.phi.double()
    energies = theta[torch.arange(width), strings].sum(1) + phi[strings[:, :-1], strings[:, 1:]].sum(1)  # (S,)
    target = torch.tensor(letters)

    @functools.cache
    def log_mass(fixed: frozenset[int]) -> float:
        """log Σ exp(energy) over the strings that agree with the text at the `fixed` positions."""
        where = sorted(fixed)
        agree = (strings[:, where] == target[where]).all(1)
        return float(torch.logsumexp(energies[agree], 0))

    shares = [0.0] * length
    for count in range(1, length + 1):
        weight = 1.0 / (count * math.comb(length, count))
        for masked in itertools.combinations(range(length), count):
            visible = frozenset(i for i in range(width) if i - first not in masked)
            for position in masked:
                known = visible | {first + position}
                shares[position] += weight * (log_mass(visible) - log_mass(known))
    return shares
