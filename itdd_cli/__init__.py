"""itdd: Monte Carlo log-likelihoods for masked-diffusion language models (I-MDCE estimators).

The Python API is `itdd_cli.Scorer` (see `itdd_cli.harness.api`); it is imported on first use so that
`import itdd_cli` (and the CLI's start) stays free of torch and transformers.
"""

from typing import Any

from itdd_cli.version import __version__

__all__ = ["ChoiceResult", "CondNllResult", "Corpus", "ModelResults", "NllResult", "RatioResult", "Scorer",
           "__version__", "corpus", "score_models"]  # fmt: skip
_CORPUS = ("Corpus", "ModelResults", "corpus", "score_models")  # in itdd_cli.harness.api_corpus


def __getattr__(name: str) -> Any:
    if name in _CORPUS:
        from itdd_cli.harness import api_corpus

        return getattr(api_corpus, name)
    if name in __all__ and name != "__version__":
        from itdd_cli.harness import api

        return getattr(api, name)
    raise AttributeError(f"module 'itdd_cli' has no attribute {name!r}")
