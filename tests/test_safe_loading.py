"""Loading runs no code and no pickle the user did not allow."""

from __future__ import annotations

import torch

from tests.support.cli import invoke


def test_remote_code_is_refused_without_the_flag(oracle_dir):
    result = invoke(["nll", "-m", oracle_dir], stdin='{"text": "ab"}\n')
    assert result.exit_code == 1 and "--trust-remote-code" in result.stderr


def test_pickle_only_checkpoints_are_refused_unless_allowed(tmp_path):
    from tests.support.family_checkpoints import write_tiny_bert

    directory = write_tiny_bert(tmp_path / "bert")
    from safetensors.torch import load_file

    torch.save(load_file(str(directory / "model.safetensors")), directory / "pytorch_model.bin")
    (directory / "model.safetensors").unlink()
    refused = invoke(["nll", "-", "-m", directory, "-n", "8"], stdin='{"text": "abc"}\n')
    assert refused.exit_code == 1 and "--allow-pickle" in refused.stderr and "pytorch_model.bin" in refused.stderr
    allowed = invoke(["nll", "-", "-m", directory, "-n", "8", "--allow-pickle"], stdin='{"text": "abc"}\n')
    assert allowed.exit_code == 0, allowed.stderr


def test_an_unreachable_hub_fails_at_once_in_one_line(tmp_path):
    """Without a network the hub client would retry for half a minute, logging each try."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = os.environ | {"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "https://itdd-no-such-host.invalid",
                        "HF_HOME": str(tmp_path), "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}  # fmt: skip
    env.pop("TRANSFORMERS_OFFLINE", None)
    result = subprocess.run([sys.executable, "-m", "itdd_cli", "inspect", "-m", "some-org/some-model"], env=env,
                            capture_output=True, text=True, timeout=120)  # fmt: skip
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "not in the local cache and itdd-no-such-host.invalid cannot be reached" in result.stderr
