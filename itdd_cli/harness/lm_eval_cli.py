"""`itdd lm-eval …`: lm-eval's own command line with the `itdd` backend registered.

Knows lm-eval's CLI, not its `LM` contract (lm_eval_backend.py). The backend is registered by name
and imported only when lm-eval looks it up to run, so `itdd lm-eval run --help` loads neither torch
nor transformers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import lm_eval.models  # noqa: F401  (registers lm-eval's own backends before ours)
from lm_eval.api.registry import model_registry

BACKEND = "itdd_cli.harness.lm_eval_backend:ItddLM"


def run_lm_eval(arguments: list[str]) -> None:
    """lm-eval's own command line with the `itdd` backend registered."""
    from lm_eval._cli.harness import HarnessCLI

    if "itdd" not in model_registry:  # a placeholder: the backend (torch, transformers) loads when a run needs it
        model_registry.register("itdd", target=BACKEND)
    sys.argv = ["lm-eval", *arguments]
    parser = HarnessCLI()
    args = parser.parse_args()  # `--help` prints and exits here, before lm_eval.utils (requests, numpy: a second)
    from lm_eval.utils import setup_logging

    setup_logging()  # as lm-eval's own entry point (`lm_eval.__main__.cli_evaluate`), checking in between
    _check_before_running(args)
    parser.execute(args)


def _check_before_running(args: argparse.Namespace) -> None:
    """`--model itdd`'s model args and a --device the user named, checked before lm-eval indexes its
    tasks (about half a minute) and before the model loads: a mistake costs a second, not a run."""
    from lm_eval.config.evaluate_config import EvaluatorConfig
    from lm_eval.utils import simple_parse_args_string

    from itdd_cli.harness.lm_eval_args import check_named_device, parse_model_args
    from itdd_cli.harness.mc_log import check_not_input

    if getattr(args, "command", None) != "run":
        return
    try:
        config = EvaluatorConfig.load_yaml_config(args.config) if getattr(args, "config", None) else {}
    except Exception:  # lm-eval reports an unreadable --config in its own words
        return
    given = config | {key: value for key, value in vars(args).items() if value or value == 0}  # flags over YAML
    if given.get("model") != "itdd":
        return
    model_args = given.get("model_args") or {}
    args_given = simple_parse_args_string(model_args) if isinstance(model_args, str) else model_args
    own = parse_model_args(args_given)
    if given.get("device") is not None:
        check_named_device(str(given["device"]), own.device)
    if own.mc_log is not None:  # what lm-eval reads: its --config, task paths and --include_path directories
        tasks = given.get("tasks") or []
        names = [str(given[key]) for key in ("config", "include_path") if given.get(key)] + [
            name.strip() for item in ([tasks] if isinstance(tasks, str) else tasks) for name in str(item).split(",")]
        check_not_input("model_args mc_log", own.mc_log, [name for name in names if Path(name).exists()])
