"""Models shipped inside the package, usable by name (`-m demo`, `-m dna8`) with no download.

`demo` (the default when no model is given) is a small English masked-diffusion LM trained on
CPython's own documentation by `scripts/train_demo.py`; `dna8` is the paper's synthetic DNA
experiment (`scripts/train_dna8.py`), whose true likelihoods ship in `examples/dna8.jsonl`.
Both are in LLaDA's on-disk format and load through the native `llada` adapter. `load_model`
resolves these names (as --model or --tokenizer); this module imports nothing heavy, so the CLI
can ask about them without loading torch.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT = "demo"
DESCRIPTIONS = {
    "demo": "English demo: a 1.6M-parameter masked-diffusion LM trained on CPython's documentation",
    "dna8": "the paper's synthetic DNA experiment: 128 sequences of length 8 with known probabilities",
}


def bundled_path(name: str) -> Path | None:
    """The directory of a bundled model called `name`, if there is one (a real directory wins)."""
    if name in DESCRIPTIONS and not Path(name).exists() and (HERE / name / "config.json").is_file():
        return HERE / name
    return None


def model_or_default(name: str | None) -> tuple[str, bool]:
    """The model to load, and whether it is the bundled default because no model was named."""
    return (DEFAULT, True) if name is None else (name, False)
