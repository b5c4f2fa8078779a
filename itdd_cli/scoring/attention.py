"""Which SDPA kernel computes attention on CUDA, chosen by measuring itdd's own batches.

PyTorch picks a kernel per call by rules, not speed: on recent GPUs it may prefer cuDNN, which
builds a plan for every new shape, and a padded batch's mask rules out flash. So the engine
tries each kernel on the first batch of each kind (no padding, padding, block layout), keeps
those whose log-probabilities agree with the math kernel's, and runs that kind under the
fastest. On the CPU nothing is chosen ("cpu default"). The numbers of two runs agree to the
last digit only under the same kernel: the summary's model line names it.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch

KERNELS = ("flash", "cudnn", "efficient", "math")  # the order that breaks a tie; math is the reference
TOLERANCE = {torch.float32: 1e-3, torch.float64: 1e-6}  # nats; half precision: HALF_TOLERANCE
HALF_TOLERANCE = 0.1


@contextmanager
def kernel(name: str) -> Iterator[None]:
    """Run scaled_dot_product_attention with only the named kernel allowed."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    member = {"flash": "FLASH_ATTENTION", "cudnn": "CUDNN_ATTENTION", "efficient": "EFFICIENT_ATTENTION",
              "math": "MATH"}[name]  # fmt: skip
    if not hasattr(SDPBackend, member):  # an older torch without this kernel
        raise RuntimeError(f"this torch has no {name} attention kernel")
    with sdpa_kernel([getattr(SDPBackend, member)]):
        yield


def choose(run: Callable[[str], torch.Tensor], timer: Callable[[Callable[[], object]], float],
           dtype: torch.dtype | None) -> tuple[str, dict[str, float | None]]:  # fmt: skip
    """(the fastest kernel whose results match math's, seconds per kernel: None where it cannot run
    this batch or disagrees). `run(name)` scores the probe batch under that kernel."""
    tolerance = TOLERANCE.get(dtype, HALF_TOLERANCE)
    reference = run("math")
    seconds: dict[str, float | None] = {}
    for name in KERNELS:
        try:
            result = reference if name == "math" else run(name)  # also the warm-up: plans are built here
        except RuntimeError:  # "no available kernel": this kernel cannot take this mask, dtype or shape
            seconds[name] = None
            continue
        agrees = result.shape == reference.shape and bool(((result - reference).abs() <= tolerance).all())
        seconds[name] = timer(lambda name=name: run(name)) if agrees else None
    usable = [(s, KERNELS.index(name), name) for name, s in seconds.items() if s is not None]
    return min(usable)[2], seconds


def cuda_timer(function: Callable[[], object]) -> float:
    """Seconds one call takes on the GPU, waiting for the work it queued."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    function()
    torch.cuda.synchronize()
    return time.perf_counter() - start


class Kernels:
    """The attention kernel of each kind of batch on CUDA, chosen at the first batch of the kind."""

    def __init__(self, dtype: torch.dtype | None) -> None:
        self.dtype = dtype
        self.chosen: dict[str, str] = {}
        self.seconds: dict[str, dict[str, float | None]] = {}  # what each choice measured

    def run(self, kind: str, call: Callable[[], torch.Tensor], probe: Callable[[], torch.Tensor]) -> torch.Tensor:
        """`call()` under the kind's kernel, choosing it first by timing `probe()` (a slice of the batch)."""
        if kind not in self.chosen:

            def trial(name: str) -> torch.Tensor:
                with kernel(name), warnings.catch_warnings():  # a kernel that cannot run says why: expected here
                    warnings.simplefilter("ignore")
                    return probe()

            self.chosen[kind], self.seconds[kind] = choose(trial, cuda_timer, self.dtype)
        with kernel(self.chosen[kind]):
            return call()

    def describe(self) -> str:
        return ", ".join(f"{name} ({kind})" for kind, name in self.chosen.items())
