"""An independent per-token decomposition on the oracle, by brute force from θ and φ alone.

    c_l = Σ_k (1/k) · E_{|M|=k} [ 1{l∈M} · −log p(x_l | x_{M^c}) ]

over uniform k-subsets M of the scored positions (the prompt is never masked), where
p(x_l | x_{M^c}) marginalises the other masked positions. Shares no code with itdd.
"""

from __future__ import annotations

import functools
import itertools
import math

from itdd_cli.oracle import ALPHABET, OracleDistribution


def per_token_shares(distribution: OracleDistribution, prompt: str, response: str) -> list[float]:
    letters = [ALPHABET.index(c) for c in prompt + response]
    theta = distribution.theta.tolist()
    phi = distribution.phi.tolist()
    size, first, length = len(ALPHABET), len(prompt), len(response)

    @functools.cache
    def log_mass(fixed: frozenset[tuple[int, int]]) -> float:
        """log Σ exp(energy) over the strings that agree with `fixed` (position, letter)."""
        known = dict(fixed)
        free = [i for i in range(len(letters)) if i not in known]
        energies = []
        for fill in itertools.product(range(size), repeat=len(free)):
            x = [known.get(i, 0) for i in range(len(letters))]
            for i, a in zip(free, fill, strict=True):
                x[i] = a
            energy = sum(theta[i][a] for i, a in enumerate(x)) + sum(phi[a][b] for a, b in itertools.pairwise(x))
            energies.append(energy)
        top = max(energies)
        return top + math.log(sum(math.exp(e - top) for e in energies))

    shares = [0.0] * length
    for count in range(1, length + 1):
        weight = 1.0 / (count * math.comb(length, count))
        for masked in itertools.combinations(range(length), count):
            visible = frozenset((i, a) for i, a in enumerate(letters) if i - first not in masked)
            for position in masked:
                known = visible | {(first + position, letters[first + position])}
                shares[position] += weight * (log_mass(visible) - log_mass(known))
    return shares
