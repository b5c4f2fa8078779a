"""From a scoring command's options (by name) to what the run needs: Settings, Source, Output, Policy,
Fields and a model loader — each checked before the model loads — then one run or a checkpoint study."""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from itdd_cli.cli.signature import Options
from itdd_cli.core import checks
from itdd_cli.core.settings import Settings
from itdd_cli.errors import UsageError
from itdd_cli.io.formats import Format, InputFormat
from itdd_cli.io.records import Fields
from itdd_cli.results.rows import SPECS, Command
from itdd_cli.results.summary import check_gate_names

if TYPE_CHECKING:
    from itdd_cli.io.sources import Source
    from itdd_cli.models import ScoringModel
    from itdd_cli.results.destination import Output, Policy

FIELD_SUFFIX = "_field"


def settings_from(options: Options) -> Settings:
    """Every Settings field the command has an option for; the rest keep their defaults."""
    named = options.named()
    given = {field.name: named[field.name] for field in dataclasses.fields(Settings) if field.name in named}
    settings = Settings(**given, batch_rows=checks.batch_rows("--batch-size", options.batch_size))
    checks.combination(settings, lambda name: "--" + name.replace("_", "-"))  # `--max-samples`: the option
    return settings


def check_guided(command: Command, settings: Settings) -> None:
    """--cfg guides by the prompt: refused before the model loads where there is none."""
    if settings.cfg:
        checks.guidance(command.value, settings.cfg, lambda name: "--" + name)


def policy_from(options: Options) -> Policy:
    from itdd_cli.results.destination import Policy
    from itdd_cli.results.summary import parse_gates

    gates = parse_gates(options.fail_above or [], options.fail_below or [])  # a bad gate fails before loading
    return Policy(skip_invalid=options.skip_invalid, gates=gates, revision=options.revision)


def source_from(options: Options) -> Source:
    input_format, dataset = options.input_format, options.dataset
    if options.lines:
        if input_format not in (InputFormat.auto, InputFormat.lines):
            raise UsageError(f"--lines contradicts --input-format {input_format.value}")
        input_format = InputFormat.lines
    if dataset is not None and options.input_path not in (None, "-"):
        raise UsageError("give INPUT or --dataset, not both")
    if dataset is None and (options.dataset_config or options.split):
        raise UsageError("--dataset-config and --split name a part of a --dataset")
    from itdd_cli.io.sources import Source

    return Source(options.input_path, input_format, dataset, options.dataset_config, options.split, options.limit)


def output_from(options: Options, source: Source) -> Output:
    """Input, output and summary checked (and the output locked) before the model loads."""
    from itdd_cli.io.formats import resolve_format
    from itdd_cli.results.destination import Output, prepare_output

    if options.per_token and resolve_format(options.fmt, options.output, sys.stdout) is Format.table:
        raise UsageError("--per-token adds a list of tokens to every row, which a table cannot show: write JSONL or "
                         "CSV (-o FILE.jsonl, or --format jsonl) and look at it with 'itdd show FILE'")  # fmt: skip
    out = Output(path=options.output, fmt=options.fmt, overwrite=options.overwrite, resume=options.resume,
                 summary_path=options.summary, quiet=options.quiet)  # fmt: skip
    return prepare_output(out, source.path)


def fields_from(command: Command, options: Options) -> Fields:
    """`--text-field`, `--prompt-field`, … by name; `--keep` must not shadow a field of the output row."""
    names = tuple(name.strip() for item in options.keep or [] for name in item.split(",") if name.strip())
    checks.kept_names(names, SPECS[command].field, "--keep")
    given = {name.removesuffix(FIELD_SUFFIX): value for name, value in options.named().items()
             if name.endswith(FIELD_SUFFIX)}  # fmt: skip
    return Fields(**given, keep=names)


def loader_from(options: Options) -> Callable[[str | None], ScoringModel]:
    """Loads a model by name (None: the bundled default, with a notice) with the command's load options."""
    if options.device_map not in (None, "auto"):
        raise UsageError(f"--device-map {options.device_map!r}: only 'auto' is supported")

    def load(name: str | None) -> ScoringModel:
        from itdd_cli.bundled import model_or_default
        from itdd_cli.models import LoadOptions, load_model
        from itdd_cli.views.reporting import notice

        model, is_default = model_or_default(name)
        if is_default:
            notice(f"no --model given: scoring with the bundled '{model}' model (tiny, for trying itdd out); "
                   "pass -m with a checkpoint or hub id (e.g. GSAI-ML/LLaDA-8B-Base) for real numbers")  # fmt: skip
        named = options.named()
        given = {field.name: named[field.name] for field in dataclasses.fields(LoadOptions)
                 if field.name in named and field.name != "model"}  # fmt: skip
        return load_model(LoadOptions(model=model, **given | {"dtype": checks.dtype("--dtype", options.dtype.value)}))

    return load


def model_names(options: Options) -> list[str | None]:
    """`-m` once or repeated (ratio and choice take one); none: $ITDD_MODEL, else the bundled default."""
    given = options.model
    if isinstance(given, list) and given:
        return list(given)
    if isinstance(given, str):
        return [given]
    return [os.environ.get("ITDD_MODEL") or None]


def score_command(command: Command, options: Options) -> None:
    """Everything a scoring command does, in the order that fails before the model loads where it can."""
    settings = settings_from(options)
    check_guided(command, settings)
    policy = policy_from(options)
    check_gate_names(policy.gates, command, settings.guidance is not None)
    source = source_from(options)
    output = output_from(options, source)
    fields = fields_from(command, options)
    load = loader_from(options)
    names = model_names(options)
    try:
        from itdd_cli.scoring.runner import check_samples

        check_samples(settings.samples, 1)  # the smallest record: an impossible -n is refused before loading
        several = "plot" in options.named() and names[0] is not None  # nll and cond-nll take checkpoints
        if not several or not _study(command, names, options.plot, source, settings, fields, output, policy, load):
            from itdd_cli.run.session import run_scoring

            run_scoring(command, source, load(names[0]), settings, fields, output, policy)
    finally:
        output.target.close()  # the lock and any uncommitted temporary file, whatever happens


def _study(command: Command, models: list[str], plot: str | None, source: Source, settings: Settings, fields: Fields,
           output: Output, policy: Policy, load: Callable[[str], ScoringModel]) -> bool:  # fmt: skip
    """Several checkpoints (or a directory of them): score each in turn. False: a plain one-model run."""
    from itdd_cli.results.checkpoints import expand

    names = expand(models)
    repeated = next((name for index, name in enumerate(names) if name in names[:index]), None)
    if repeated is not None:  # its rows would carry the same `model` and could not be told apart
        raise UsageError(f"-m {repeated} is given twice (rows are told apart by their model): give each "
                         "checkpoint once")  # fmt: skip
    if names == models and len(names) < 2:
        if plot:
            raise UsageError("--plot draws several checkpoints: give -m more than once, or a checkpoint-* directory")
        return False
    _run_study(command, names, plot, source, settings, fields, output, policy, load)
    return True


def _run_study(command: Command, names: list[str], plot: str | None, source: Source, settings: Settings, fields: Fields,
               output: Output, policy: Policy, load: Callable[[str], ScoringModel]) -> None:  # fmt: skip
    from rich.console import Console

    from itdd_cli.io.formats import resolve_format
    from itdd_cli.results.study_lines import write_study_json
    from itdd_cli.run.study import check_study_gates, run_study
    from itdd_cli.views.study_view import check_plot, print_study, save_plot

    if plot:
        check_plot(plot)
    study = run_study(command, source, names, load, settings, fields, output, policy)
    if resolve_format(output.fmt, output.path, sys.stdout) is Format.table:
        print_study(Console(highlight=False), study)
    elif not output.quiet:
        print_study(Console(file=sys.stderr, highlight=False, width=None if sys.stderr.isatty() else 160), study)
    if output.summary_path:
        write_study_json(study, command, settings, output.summary_path)
    if plot:
        save_plot(study, plot, source.dataset or source.path or "standard input", settings.samples)
    check_study_gates(study, policy)
