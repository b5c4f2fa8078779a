"""Loading runs no code and no pickle the user did not allow."""

from __future__ import annotations

import torch

from tests.conftest import invoke


def test_remote_code_is_refused_without_the_flag(oracle_dir):
    result = invoke(["nll", "-m", oracle_dir], stdin='{"text": "ab"}\n')
    assert result.exit_code == 1 and "--trust-remote-code" in result.stderr


def test_pickle_only_checkpoints_are_refused_unless_allowed(tmp_path):
    from tests.test_generic_adapter import write_tiny_bert

    directory = write_tiny_bert(tmp_path / "bert")
    from safetensors.torch import load_file

    torch.save(load_file(str(directory / "model.safetensors")), directory / "pytorch_model.bin")
    (directory / "model.safetensors").unlink()
    refused = invoke(["nll", "-", "-m", directory, "-n", "4"], stdin='{"text": "abc"}\n')
    assert refused.exit_code == 1 and "--allow-pickle" in refused.stderr and "pytorch_model.bin" in refused.stderr
    allowed = invoke(["nll", "-", "-m", directory, "-n", "4", "--allow-pickle"], stdin='{"text": "abc"}\n')
    assert allowed.exit_code == 0, allowed.stderr
