"""Thin Typer commands: validate options, call one library function, hand the result to the reporter."""

from __future__ import annotations

import functools
import os
import signal
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from itdd_cli import __version__
from itdd_cli.bundled import DEFAULT, DESCRIPTIONS, bundled_path
from itdd_cli.compare import compare_files
from itdd_cli.errors import GateError, ItddError, UsageError
from itdd_cli.estimators import Estimator
from itdd_cli.models import FAMILIES, LoadOptions, ScoringModel, load_model
from itdd_cli.options import (
    AllowPickleOpt,
    BaseArg,
    BatchSizeOpt,
    BlockSizeOpt,
    ChatTemplateOpt,
    ChosenFieldOpt,
    DeviceMapOpt,
    DeviceOpt,
    Dtype,
    DtypeOpt,
    EstimatorOpt,
    FailAboveOpt,
    FailBelowOpt,
    FailIfWorseOpt,
    FamilyOpt,
    FormatOpt,
    IdFieldOpt,
    IndependentOpt,
    InputArg,
    MaxTokensOpt,
    MetricOpt,
    ModelOpt,
    NewArg,
    OutputOpt,
    OverwriteOpt,
    PromptFieldOpt,
    QuietOpt,
    RejectedFieldOpt,
    ResponseFieldOpt,
    ResumeOpt,
    RevisionOpt,
    SamplesOpt,
    SeedOpt,
    SkipInvalidOpt,
    SummaryOpt,
    TextFieldOpt,
    TokenizerOpt,
    TrustOpt,
)
from itdd_cli.records import Fields
from itdd_cli.reporting import Format, notice, print_comparison, print_families, print_model_info, stderr_console
from itdd_cli.runner import Command, Settings
from itdd_cli.session import Output, Policy, run_scoring
from itdd_cli.summary import parse_gates

app = typer.Typer(
    name="itdd",
    help="Log-likelihoods of masked-diffusion language models (I-MDCE Monte Carlo estimators).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
F = TypeVar("F", bound=Callable[..., Any])


def exits_cleanly(command: F) -> F:
    """Map every failure to one line on stderr and its exit code; ITDD_DEBUG=1 adds the traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ItddError as error:
            _fail(str(error), error.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted; the rows finished so far are written (continue with --resume)", 130)
        except Exception as error:  # a bug or an unforeseen library failure: still one line
            _fail(f"internal error: {type(error).__name__}: {error} (set ITDD_DEBUG=1 for the traceback)", 1)

    return wrapper  # type: ignore[return-value]


def _fail(message: str, code: int) -> None:
    if os.environ.get("ITDD_DEBUG"):
        traceback.print_exc()
    if os.environ.get("RANK", "0") != "0":  # under a launcher, the main process speaks for all
        raise typer.Exit(code)
    stderr_console().print(f"itdd: error: {' '.join(message.split())}", markup=False)  # always one line
    raise typer.Exit(code)


def _batch_rows(value: str) -> int | None:
    if value == "auto":
        return None
    if value.isdigit() and int(value) > 0:
        return int(value)
    raise UsageError(f"--batch-size {value!r}: expected a positive integer or 'auto'")


def _load(model: str | None, dtype: Dtype, device: str, trust: bool, family: str | None, tokenizer: str | None,
          revision: str | None, device_map: str | None = None, allow_pickle: bool = False,
          block_size: int | None = None) -> ScoringModel:  # fmt: skip
    if model is None:
        model = DEFAULT
        notice(f"no --model given: scoring with the bundled '{DEFAULT}' model (tiny, for trying itdd out); "
               "pass -m with a checkpoint or hub id (e.g. GSAI-ML/LLaDA-8B-Base) for real numbers")  # fmt: skip
    location = bundled_path(model)
    if location is not None:
        model = str(location)
    if device_map not in (None, "auto"):
        raise UsageError(f"--device-map {device_map!r}: only 'auto' is supported")
    options = LoadOptions(model, dtype.value, device, trust, family, tokenizer, revision, device_map, allow_pickle,
                          block_size)  # fmt: skip
    return load_model(options)


def _settings(estimator: Estimator, samples: int, seed: int, independent: bool, batch_size: str,
              max_tokens: int | None, chat_template: bool = False) -> Settings:  # fmt: skip
    return Settings(estimator, samples, seed, independent, _batch_rows(batch_size), max_tokens, chat_template)


@app.command("nll")
@exits_cleanly
def nll(
    input_path: InputArg = None,
    model: ModelOpt = None,
    output: OutputOpt = None,
    overwrite: OverwriteOpt = False,
    resume: ResumeOpt = False,
    fmt: FormatOpt = Format.auto,
    samples: SamplesOpt = 128,
    estimator: EstimatorOpt = Estimator.stratified,
    seed: SeedOpt = 0,
    batch_size: BatchSizeOpt = "auto",
    max_tokens: MaxTokensOpt = None,
    dtype: DtypeOpt = Dtype.auto,
    device: DeviceOpt = "auto",
    device_map: DeviceMapOpt = None,
    block_size: BlockSizeOpt = None,
    trust_remote_code: TrustOpt = False,
    allow_pickle: AllowPickleOpt = False,
    family: FamilyOpt = None,
    tokenizer: TokenizerOpt = None,
    revision: RevisionOpt = None,
    text_field: TextFieldOpt = "text",
    id_field: IdFieldOpt = "id",
    skip_invalid: SkipInvalidOpt = False,
    summary: SummaryOpt = None,
    fail_above: FailAboveOpt = None,
    fail_below: FailBelowOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """−log p(text) for each record's text field."""
    settings = _settings(estimator, samples, seed, False, batch_size, max_tokens)
    gates = parse_gates(fail_above or [], fail_below or [])  # a bad gate fails before the model loads
    loaded = _load(model, dtype, device, trust_remote_code, family, tokenizer, revision, device_map, allow_pickle,
                   block_size)  # fmt: skip
    fields = Fields(text=text_field, id=id_field)
    out = Output(output, fmt, overwrite, resume, summary, quiet)
    run_scoring(Command.nll, input_path, loaded, settings, fields, out, Policy(skip_invalid, gates, revision))


@app.command("cond-nll")
@exits_cleanly
def cond_nll(
    input_path: InputArg = None,
    model: ModelOpt = None,
    output: OutputOpt = None,
    overwrite: OverwriteOpt = False,
    resume: ResumeOpt = False,
    fmt: FormatOpt = Format.auto,
    samples: SamplesOpt = 128,
    estimator: EstimatorOpt = Estimator.stratified,
    seed: SeedOpt = 0,
    batch_size: BatchSizeOpt = "auto",
    max_tokens: MaxTokensOpt = None,
    dtype: DtypeOpt = Dtype.auto,
    device: DeviceOpt = "auto",
    device_map: DeviceMapOpt = None,
    block_size: BlockSizeOpt = None,
    trust_remote_code: TrustOpt = False,
    allow_pickle: AllowPickleOpt = False,
    family: FamilyOpt = None,
    tokenizer: TokenizerOpt = None,
    revision: RevisionOpt = None,
    chat_template: ChatTemplateOpt = False,
    prompt_field: PromptFieldOpt = "prompt",
    response_field: ResponseFieldOpt = "response",
    id_field: IdFieldOpt = "id",
    skip_invalid: SkipInvalidOpt = False,
    summary: SummaryOpt = None,
    fail_above: FailAboveOpt = None,
    fail_below: FailBelowOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """−log p(response | prompt); the prompt is never masked."""
    settings = _settings(estimator, samples, seed, False, batch_size, max_tokens, chat_template)
    gates = parse_gates(fail_above or [], fail_below or [])
    loaded = _load(model, dtype, device, trust_remote_code, family, tokenizer, revision, device_map, allow_pickle,
                   block_size)  # fmt: skip
    fields = Fields(prompt=prompt_field, response=response_field, id=id_field)
    out = Output(output, fmt, overwrite, resume, summary, quiet)
    run_scoring(Command.cond_nll, input_path, loaded, settings, fields, out, Policy(skip_invalid, gates, revision))


@app.command("ratio")
@exits_cleanly
def ratio(
    input_path: InputArg = None,
    model: ModelOpt = None,
    output: OutputOpt = None,
    overwrite: OverwriteOpt = False,
    resume: ResumeOpt = False,
    fmt: FormatOpt = Format.auto,
    samples: SamplesOpt = 128,
    estimator: EstimatorOpt = Estimator.stratified,
    seed: SeedOpt = 0,
    independent: IndependentOpt = False,
    batch_size: BatchSizeOpt = "auto",
    max_tokens: MaxTokensOpt = None,
    dtype: DtypeOpt = Dtype.auto,
    device: DeviceOpt = "auto",
    device_map: DeviceMapOpt = None,
    block_size: BlockSizeOpt = None,
    trust_remote_code: TrustOpt = False,
    allow_pickle: AllowPickleOpt = False,
    family: FamilyOpt = None,
    tokenizer: TokenizerOpt = None,
    revision: RevisionOpt = None,
    chat_template: ChatTemplateOpt = False,
    prompt_field: PromptFieldOpt = "prompt",
    chosen_field: ChosenFieldOpt = "chosen",
    rejected_field: RejectedFieldOpt = "rejected",
    id_field: IdFieldOpt = "id",
    skip_invalid: SkipInvalidOpt = False,
    summary: SummaryOpt = None,
    fail_above: FailAboveOpt = None,
    fail_below: FailBelowOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """log p(chosen | prompt) − log p(rejected | prompt), with coupled masks by default."""
    settings = _settings(estimator, samples, seed, independent, batch_size, max_tokens, chat_template)
    gates = parse_gates(fail_above or [], fail_below or [])
    loaded = _load(model, dtype, device, trust_remote_code, family, tokenizer, revision, device_map, allow_pickle,
                   block_size)  # fmt: skip
    fields = Fields(prompt=prompt_field, chosen=chosen_field, rejected=rejected_field, id=id_field)
    out = Output(output, fmt, overwrite, resume, summary, quiet)
    run_scoring(Command.ratio, input_path, loaded, settings, fields, out, Policy(skip_invalid, gates, revision))


@app.command("compare")
@exits_cleanly
def compare(
    base: BaseArg,
    new: NewArg,
    metric: MetricOpt = None,
    fail_if_worse: FailIfWorseOpt = False,
) -> None:
    """Pair two result files by id: the mean difference NEW − BASE, its standard error, significance."""
    comparison = compare_files(base, new, metric)
    print_comparison(Console(highlight=False, soft_wrap=True), comparison)
    if fail_if_worse and comparison.significantly_worse:
        raise GateError(f"{new} is significantly worse than {base} on {comparison.metric}")


@app.command("inspect")
@exits_cleanly
def inspect(
    model: ModelOpt = None,
    dtype: DtypeOpt = Dtype.auto,
    device: DeviceOpt = "auto",
    block_size: BlockSizeOpt = None,
    trust_remote_code: TrustOpt = False,
    family: FamilyOpt = None,
    tokenizer: TokenizerOpt = None,
    revision: RevisionOpt = None,
) -> None:
    """What itdd detected for a model: family, mask id, framing, maximum length, …"""
    loaded = _load(model, dtype, device, trust_remote_code, family, tokenizer, revision, block_size=block_size)
    print_model_info(Console(highlight=False), loaded.info)


@app.command("models")
@exits_cleanly
def models() -> None:
    """Supported checkpoint families, with example hub ids."""
    print_families(Console(highlight=False), FAMILIES, DESCRIPTIONS)


@app.command("version", hidden=True)
def version() -> None:
    typer.echo(__version__)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM ends a run like Ctrl-C: finished rows stay written


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    app()
