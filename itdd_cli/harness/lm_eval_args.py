"""The lm-eval backend's `--model_args` and device, checked by the command line's rules before a model loads.

Each model arg is checked as its CLI option is (checks.py, `check_device`, the family list) and a bad
one is a one-line usage error (exit 2) that names it, e.g. `model_args samples must be ≥ 8`.

The device: lm-eval hands its own `--device` to every backend, `cuda:0` when the user named none, so
the backend cannot tell a named cuda:0 from the default. Hence: `device=` in the model args wins over
lm-eval's `--device`; lm-eval's default cuda:0 on a machine without it falls back to auto with a
notice; any other device must exist, as `itdd nll --device` requires. `itdd lm-eval` sees the command
line, so it refuses a named `--device` that is absent (cuda:0 included) or that disagrees with `device=`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from itdd_cli.core import checks
from itdd_cli.core.windows import Long
from itdd_cli.errors import UsageError
from itdd_cli.estimators import Estimator
from itdd_cli.harness.mc_log import check_path
from itdd_cli.models.loading import check_device
from itdd_cli.models.registry import check_family

LM_EVAL_DEFAULT_DEVICE = "cuda:0"  # lm-eval 0.4's EvaluatorConfig.device, passed when --device is not given


@dataclass(frozen=True)
class ModelArgs:
    """Checked model args; the names are the model args' own, the defaults the CLI's."""

    pretrained: str = "demo"
    samples: int = 128
    estimator: str | None = None  # None: the default estimator
    seed: int = 0
    independent: bool = False
    batch_size: int | None = None  # itdd's forward rows per batch; None fills batches up to max_tokens
    max_tokens: int | None = None
    dtype: str = "auto"
    device: str | None = None  # None: lm-eval's --device decides (see `harness_device`)
    family: str | None = None
    tokenizer: str | None = None
    revision: str | None = None
    trust_remote_code: bool = False
    chat_template: bool = False
    mc_log: str | None = None
    mc_log_overwrite: bool = False  # replace an existing mc_log file (else refused, as -o without --overwrite)
    until_decided: float | None = None  # --until-decided: α in (0, 1), or a z from 1 to 8
    max_samples: int | None = None  # --max-samples: the cap on passes per choice under until_decided
    long: str = "error"  # --long: a loglikelihood_rolling document longer than the window is refused or rolled
    context: int = 0  # --context: under long=rolling, earlier tokens each later window is conditioned on
    base: str | None = None  # --base: the checkpoint a LoRA adapter `pretrained` applies to
    merge: bool = True  # merge=false: --no-merge
    cfg: float = 0.0  # --cfg: classifier-free guidance scale; the log-likelihoods become guided scores


def parse_model_args(given: Mapping[str, Any]) -> ModelArgs:
    """ModelArgs from lm-eval's parsed `--model_args` (a None value means the default), or a UsageError."""
    nameless = [value for name, value in given.items() if not str(name).strip()]
    if nameless:
        raise UsageError(f"model_args '={nameless[0]}' has no name before '='; write name=value, e.g. "
                         f"pretrained={nameless[0]} ({', '.join(_CHECKS)})")  # fmt: skip
    unknown = sorted(set(given) - set(_CHECKS))
    if unknown:
        raise UsageError(f"unknown itdd model_args: {', '.join(unknown)}; choose from {', '.join(_CHECKS)}")
    args = ModelArgs(**{name: _CHECKS[name](f"model_args {name}", value)
                        for name, value in given.items() if value is not None})  # fmt: skip
    if args.mc_log is not None:  # written after scoring: a path that cannot be written would lose every SE
        check_path("model_args mc_log", args.mc_log, args.mc_log_overwrite)
    if args.estimator == "dse":  # lm-eval reads paired per-draw values, which dse does not make (dse_draws)
        raise UsageError("model_args estimator=dse is not supported under lm-eval yet; score SEDD models there "
                         "with a time-free estimator (absorbing graph) or use `itdd nll --estimator dse`")  # fmt: skip
    if args.until_decided is not None and args.estimator is not None:
        checks.decidable(args.estimator, lambda setting: f"model_args {setting}")
    if args.max_samples is not None and args.until_decided is None:
        raise UsageError("model_args max_samples caps until_decided rounds; pass until_decided too")
    if args.context and args.long != Long.rolling:
        raise UsageError("model_args context sets rolling windows' context; pass long=rolling too")
    if args.max_samples is not None and args.max_samples < args.samples:
        raise UsageError(f"model_args max_samples {args.max_samples} is below samples {args.samples}; raise it "
                         "or lower samples")  # fmt: skip
    return args


def harness_device(device: str | None) -> str:
    """The device to use when only lm-eval's `--device` names one (see the module docstring)."""
    if device is None or device == "auto":
        return "auto"
    try:
        check_device(device)
    except UsageError:
        if device != LM_EVAL_DEFAULT_DEVICE:
            raise
        from itdd_cli.views.reporting import notice

        notice(f"lm-eval's default device {device} is not on this machine; scoring on the CPU "
               "(pass --device to choose)")  # fmt: skip
        return "auto"
    return device


def check_named_device(device: str, own: str | None) -> None:
    """A `--device` the user named on lm-eval's command line: it must exist and agree with `device=`."""
    check_device(device)
    if own is not None and own != device:
        raise UsageError(f"--device {device} and model_args device={own} disagree; give one of them "
                         "(model_args device wins over lm-eval's --device)")  # fmt: skip


def _whole(name: str, value: Any) -> Any:
    """lm-eval reads a negative number (`seed=-5`) as a float: a whole one is the integer written,
    as long as a float holds it exactly."""
    if not isinstance(value, float) or not value.is_integer():
        return value
    if abs(value) > 2**53:
        raise UsageError(f"{name} {value:g}: lm-eval reads a negative number as a float, which keeps only 16 "
                         f"digits; quote it ({name.split()[-1]}='-123…') to pass every digit")  # fmt: skip
    return int(value)


def _samples(name: str, value: Any) -> int:
    """At least two draws, and no more than memory holds for the smallest record (as `itdd nll -n`)."""
    from itdd_cli.scoring.runner import check_samples

    samples = checks.integer(name, _whole(name, value), checks.MIN_SAMPLES)
    try:
        check_samples(samples, 1)
    except UsageError as error:
        raise UsageError(str(error).replace("--samples", name)) from None
    return samples


def _number(name: str, value: Any) -> Any:
    """lm-eval passes model args as text or as what it parsed them to; a number either way."""
    try:
        return float(value) if isinstance(value, str) else value
    except ValueError:
        raise UsageError(f"{name} must be a number ≥ 0.0") from None


def _text(name: str, value: Any) -> str:
    return str(value)


def _flag(name: str, value: Any) -> bool:
    words = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    word = str(value).strip().lower()
    if word not in words:
        raise UsageError(f"{name} {str(value)!r}: expected true or false")
    return words[word]


def _batch_size(name: str, value: Any) -> int | None:
    """lm-eval's own values too: its default 1 and 'auto'/'auto:N' fill batches up to max_tokens. itdd
    sizes each batch by its token budget, so the N of lm-eval's re-probing 'auto:N' has nothing to redo."""
    word = str(value).strip()
    if word.startswith("auto:"):
        checks.integer(f"{name} {word!r}: the N of auto:N", word.removeprefix("auto:"), 1)
        return None
    if word == "1":
        return None
    return checks.batch_rows(name, _whole(name, value))


def _device(name: str, value: Any) -> str:
    try:
        check_device(str(value))
    except UsageError as error:  # the CLI's words, naming the model arg instead of the option
        raise UsageError(str(error).replace("--device cpu", "device=cpu").replace("--device", name)) from None
    return str(value)


def _family(name: str, value: Any) -> str:
    try:
        return check_family(str(value))
    except UsageError as error:
        raise UsageError(str(error).replace("--family", name)) from None


_CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "pretrained": _text,
    "samples": _samples,
    "estimator": lambda name, value: checks.choice(name, value, [member.value for member in Estimator]),
    "seed": lambda name, value: checks.seed(name, _whole(name, value)),
    "independent": _flag,
    "batch_size": _batch_size,
    "max_tokens": lambda name, value: checks.integer(name, _whole(name, value), 1),
    "dtype": checks.dtype,
    "device": _device,
    "family": _family,
    "tokenizer": _text,
    "revision": _text,
    "trust_remote_code": _flag,
    "chat_template": _flag,
    "mc_log": _text,
    "mc_log_overwrite": _flag,
    "until_decided": checks.decision_level,
    "max_samples": lambda name, value: checks.integer(name, _whole(name, value), checks.MIN_SAMPLES),
    "long": lambda name, value: checks.choice(name, value, [member.value for member in Long]),
    "context": lambda name, value: checks.integer(name, _whole(name, value), 0),
    "base": _text,
    "merge": _flag,
    "cfg": lambda name, value: checks.number(name, _number(name, value), 0.0),
}
