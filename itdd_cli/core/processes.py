"""This process's place in a launch (`accelerate launch` or `torchrun`): accelerate's process
state, kept apart from the scoring merge so that model loading can ask for its device too."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from accelerate import PartialState


def launched() -> bool:
    """Whether a launcher started several processes (both set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def process_state() -> PartialState:
    """accelerate's process state, created once per process (it is a singleton).

    Rows travel as pickled Python objects, which live on the CPU, so they go over gloo whatever
    the devices are; `cpu=True` where no GPU exists, else accelerate sees no distributed launch."""
    import torch
    from accelerate import PartialState

    group = {"backend": "gloo"} if launched() else {}  # one process has no group, and accelerate wants no backend
    return PartialState(cpu=not torch.cuda.is_available(), **group)


def process_device() -> torch.device:
    """This process's device under a launcher (its own GPU, or the CPU)."""
    device = process_state().device
    return device if device.type != "cpu" else type(device)("cpu")  # accelerate says cpu:<local rank>; one CPU
