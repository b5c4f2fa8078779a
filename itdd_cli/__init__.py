"""itdd: Monte Carlo log-likelihoods for masked-diffusion language models (I-MDCE estimators)."""

__version__ = "0.1.0"
