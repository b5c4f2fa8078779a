"""A known distribution over short strings and a checkpoint whose conditionals are exact for it.

`OracleDistribution` computes −log p in closed form (by brute-force enumeration, independently
of the checkpoint's own forward pass); `write_checkpoint` saves it as a masked-LM directory
(`config.json` with `auto_map`, safetensors weights, a fast character tokenizer) that itdd
loads through its generic adapter with `--trust-remote-code`. Used by the tests, the README
demo and `scripts/make_oracle.py`.
"""

from __future__ import annotations

import itertools
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

ALPHABET = "abcd"
SPECIAL_TOKENS = ["[PAD]", "[MASK]", "[UNK]"]
MAX_LENGTH = 8


@dataclass(frozen=True)
class OracleDistribution:
    """p_T(x) ∝ exp(Σ θ[i, x_i] + Σ φ[x_i, x_{i+1}]) over strings of length T ≤ MAX_LENGTH."""

    theta: torch.Tensor  # (MAX_LENGTH, A)
    phi: torch.Tensor  # (A, A)

    @classmethod
    def random(cls, seed: int, scale: float = 1.5) -> OracleDistribution:
        generator = torch.Generator().manual_seed(seed)
        size = len(ALPHABET)
        theta = torch.randn(MAX_LENGTH, size, generator=generator, dtype=torch.float64) * scale
        phi = torch.randn(size, size, generator=generator, dtype=torch.float64) * scale
        return cls(theta, phi)

    def _energy(self, letters: tuple[int, ...]) -> float:
        energy = sum(float(self.theta[i, a]) for i, a in enumerate(letters))
        return energy + sum(float(self.phi[a, b]) for a, b in itertools.pairwise(letters))

    def _log_mass(self, pattern: list[int | None]) -> float:
        """log Σ exp(energy) over all strings that match `pattern` (None = free letter)."""
        free = [i for i, a in enumerate(pattern) if a is None]
        energies = []
        for fill in itertools.product(range(len(ALPHABET)), repeat=len(free)):
            letters = list(pattern)
            for i, a in zip(free, fill, strict=True):
                letters[i] = a
            energies.append(self._energy(tuple(letters)))  # type: ignore[arg-type]
        return float(torch.logsumexp(torch.tensor(energies, dtype=torch.float64), 0))

    def nll(self, text: str) -> float:
        """−log p(text), the length being given."""
        return self.cond_nll("", text)

    def cond_nll(self, prompt: str, response: str) -> float:
        """−log p(response | prompt) among strings of length len(prompt + response)."""
        letters: list[int | None] = [ALPHABET.index(c) for c in prompt + response]
        free: list[int | None] = [ALPHABET.index(c) for c in prompt] + [None] * len(response)
        return self._log_mass(free) - self._log_mass(letters)


Item = tuple[str, list[str], list[float]]


def close_choices(distribution: OracleDistribution, prompts: tuple[str, ...] = ("ab", "c", "dd", "ba"),
                  length: int = 3, low: float = 0.05, high: float = 1.0) -> list[Item]:  # fmt: skip
    """4-way items whose best choice beats the runner-up by `low`–`high` nats of true conditional NLL:
    (prompt, choices with the best first, their true NLLs). Every response of `length` letters is ranked
    by its true NLL after each prompt; each window of 4 neighbours in that ranking whose margin falls in
    the range is an item (the runner-ups close behind too)."""
    items = []
    for prompt in prompts:
        responses = ["".join(letters) for letters in itertools.product(ALPHABET, repeat=length)]
        truth = {response: distribution.cond_nll(prompt, response) for response in responses}
        ranked = sorted(responses, key=lambda response: truth[response])
        for start in range(min(48, len(ranked) - 3)):
            group = ranked[start : start + 4]
            if low <= truth[group[1]] - truth[group[0]] <= high:
                items.append((prompt, group, [truth[g] for g in group]))
    return items


def _save_tokenizer(directory: Path) -> None:
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate([*SPECIAL_TOKENS, *ALPHABET])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), "isolated")  # one token a character
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        mask_token="[MASK]",
        pad_token="[PAD]",
        unk_token="[UNK]",
        model_max_length=MAX_LENGTH,
    )
    tokenizer.save_pretrained(directory)


def write_checkpoint(directory: str | Path, distribution: OracleDistribution) -> Path:
    """Save `distribution` as an exact-conditional masked-LM checkpoint in `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(__file__).with_name("modeling_oracle.py"), directory / "modeling_oracle.py")
    config = {
        "model_type": "itdd-oracle",
        "architectures": ["OracleForMaskedLM"],
        "auto_map": {
            "AutoConfig": "modeling_oracle.OracleConfig",
            "AutoModelForMaskedLM": "modeling_oracle.OracleForMaskedLM",
        },
        "alphabet_size": len(ALPHABET),
        "first_letter_id": len(SPECIAL_TOKENS),
        "vocab_size": len(SPECIAL_TOKENS) + len(ALPHABET),
        "mask_token_id": SPECIAL_TOKENS.index("[MASK]"),
        "pad_token_id": SPECIAL_TOKENS.index("[PAD]"),
        "max_position_embeddings": MAX_LENGTH,
        "torch_dtype": "float32",
    }
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    weights = {"theta": distribution.theta.float(), "phi": distribution.phi.float()}
    save_file({k: v.contiguous() for k, v in weights.items()}, str(directory / "model.safetensors"))
    _save_tokenizer(directory)
    return directory
