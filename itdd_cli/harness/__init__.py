"""Other front doors over the same runner: the Python API (`Scorer`) and lm-evaluation-harness's backend.
"""
