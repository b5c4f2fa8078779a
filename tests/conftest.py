from __future__ import annotations

import os
from pathlib import Path

# Before anything imports huggingface_hub, which reads these once: no test may reach the network
# (a hub lookup would otherwise retry for minutes where the network is closed).
os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")

import pytest  # noqa: E402
import torch  # noqa: E402

from itdd_cli.oracle import OracleDistribution, write_checkpoint  # noqa: E402

if os.environ.get("PYTEST_XDIST_WORKER"):  # `pytest -n 2`: one thread per worker, not two workers × all cores
    torch.set_num_threads(1)

ORACLE_SEED = 7


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach the network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def distribution() -> OracleDistribution:
    return OracleDistribution.random(ORACLE_SEED)


@pytest.fixture(scope="session")
def oracle_dir(tmp_path_factory: pytest.TempPathFactory, distribution: OracleDistribution) -> Path:
    """An exact-conditional checkpoint in masked-LM format (custom class via auto_map)."""
    return write_checkpoint(tmp_path_factory.mktemp("oracle"), distribution)


@pytest.fixture
def base(oracle_dir):
    """Options that score with the oracle checkpoint, cheaply."""
    return ["-m", oracle_dir, "--trust-remote-code", "-n", "8"]
