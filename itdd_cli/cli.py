"""Thin Typer commands: validate options, call one library function, hand the result to the reporter."""

from __future__ import annotations

import os
import signal
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from typer._click.exceptions import ClickException
from typer.core import TyperGroup

from itdd_cli import __version__
from itdd_cli.errors import GateError, ItddError, UsageError
from itdd_cli.estimators.kinds import Estimator
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
from itdd_cli.reporting import Format, print_comparison, stderr_console
from itdd_cli.rows import Command

if TYPE_CHECKING:
    from itdd_cli.models import ScoringModel
    from itdd_cli.settings import Settings

# The one map from a failure to its line on stderr and its exit code (first match wins).
INTERRUPTED = "interrupted; the rows finished so far are written (continue with --resume)"


def _internal(error: BaseException) -> tuple[str, int]:
    return f"internal error: {type(error).__name__}: {error} (set ITDD_DEBUG=1 for the traceback)", 1


ERROR_MAP: list[tuple[type[BaseException], Callable[[Any], tuple[str, int]]]] = [
    (ItddError, lambda error: (str(error), error.exit_code)),
    (ClickException, lambda error: (error.format_message(), error.exit_code)),  # option parsing: exit 2
    (KeyboardInterrupt, lambda error: (INTERRUPTED, 130)),
    (Exception, _internal),  # a bug or an unforeseen library failure: still one line
]


class _ItddGroup(TyperGroup):
    """Applies ERROR_MAP around every command; ITDD_DEBUG=1 adds the traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except BaseException as error:
            mapping = next((to_line for kind, to_line in ERROR_MAP if isinstance(error, kind)), None)
            if mapping is None:
                raise
            message, code = mapping(error)
            if os.environ.get("ITDD_DEBUG"):
                traceback.print_exc()
            if os.environ.get("RANK", "0") == "0":  # under a launcher, the main process speaks for all
                stderr_console().print(f"itdd: error: {' '.join(message.split())}", markup=False)  # one line
            raise typer.Exit(code) from None


app = typer.Typer(
    name="itdd",
    cls=_ItddGroup,
    help="Log-likelihoods of masked-diffusion language models (I-MDCE Monte Carlo estimators).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)


def _batch_rows(value: str) -> int | None:
    if value == "auto":
        return None
    if value.isdigit() and int(value) > 0:
        return int(value)
    raise UsageError(f"--batch-size {value!r}: expected a positive integer or 'auto'")


def _load(model: str | None, dtype: Dtype, device: str, trust_remote_code: bool, family: str | None,
          tokenizer: str | None, revision: str | None, device_map: str | None = None,
          allow_pickle: bool = False, block_size: int | None = None) -> ScoringModel:  # fmt: skip
    from itdd_cli.bundled import DEFAULT, bundled_path
    from itdd_cli.models import LoadOptions, load_model
    from itdd_cli.reporting import notice

    if model is None:
        model = DEFAULT
        notice(f"no --model given: scoring with the bundled '{DEFAULT}' model (tiny, for trying itdd out); "
               "pass -m with a checkpoint or hub id (e.g. GSAI-ML/LLaDA-8B-Base) for real numbers")  # fmt: skip
    location = bundled_path(model)
    if location is not None:
        model = str(location)
    if device_map not in (None, "auto"):
        raise UsageError(f"--device-map {device_map!r}: only 'auto' is supported")
    options = LoadOptions(
        model=model,
        dtype=dtype.value,
        device=device,
        trust_remote_code=trust_remote_code,
        family=family,
        tokenizer=tokenizer,
        revision=revision,
        device_map=device_map,
        allow_pickle=allow_pickle,
        block_size=block_size,
    )
    return load_model(options)


def _settings(estimator: Estimator, samples: int, seed: int, batch_size: str, max_tokens: int | None,
              independent: bool = False, chat_template: bool = False) -> Settings:  # fmt: skip
    from itdd_cli.settings import Settings

    return Settings(
        estimator=estimator,
        samples=samples,
        seed=seed,
        independent=independent,
        batch_rows=_batch_rows(batch_size),
        max_tokens=max_tokens,
        chat_template=chat_template,
    )


def _output(output: str | None, fmt: Format, overwrite: bool, resume: bool, summary: str | None, quiet: bool) -> Any:
    from itdd_cli.session import Output

    return Output(path=output, fmt=fmt, overwrite=overwrite, resume=resume, summary_path=summary, quiet=quiet)


def _policy(skip_invalid: bool, fail_above: list[str] | None, fail_below: list[str] | None,
            revision: str | None) -> Any:  # fmt: skip
    from itdd_cli.session import Policy
    from itdd_cli.summary import parse_gates

    gates = parse_gates(fail_above or [], fail_below or [])  # a bad gate fails before the model loads
    return Policy(skip_invalid=skip_invalid, gates=gates, revision=revision)


def _run(command: Command, input_path: str | None, model: ScoringModel, settings: Settings, fields: Fields,
         output: Any, policy: Any) -> None:  # fmt: skip
    from itdd_cli.session import run_scoring

    run_scoring(command, input_path, model, settings, fields, output, policy)


@app.command("nll")
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
    settings = _settings(estimator, samples, seed, batch_size, max_tokens)
    policy = _policy(skip_invalid, fail_above, fail_below, revision)
    out = _output(output, fmt, overwrite, resume, summary, quiet)
    loaded = _load(model, dtype, device, trust_remote_code, family, tokenizer, revision, device_map, allow_pickle,
                   block_size)  # fmt: skip
    _run(Command.nll, input_path, loaded, settings, Fields(text=text_field, id=id_field), out, policy)


@app.command("cond-nll")
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
    settings = _settings(estimator, samples, seed, batch_size, max_tokens, chat_template=chat_template)
    policy = _policy(skip_invalid, fail_above, fail_below, revision)
    out = _output(output, fmt, overwrite, resume, summary, quiet)
    loaded = _load(model, dtype, device, trust_remote_code, family, tokenizer, revision, device_map, allow_pickle,
                   block_size)  # fmt: skip
    fields = Fields(prompt=prompt_field, response=response_field, id=id_field)
    _run(Command.cond_nll, input_path, loaded, settings, fields, out, policy)


@app.command("ratio")
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
    settings = _settings(estimator, samples, seed, batch_size, max_tokens, independent, chat_template)
    policy = _policy(skip_invalid, fail_above, fail_below, revision)
    out = _output(output, fmt, overwrite, resume, summary, quiet)
    loaded = _load(model, dtype, device, trust_remote_code, family, tokenizer, revision, device_map, allow_pickle,
                   block_size)  # fmt: skip
    fields = Fields(prompt=prompt_field, chosen=chosen_field, rejected=rejected_field, id=id_field)
    _run(Command.ratio, input_path, loaded, settings, fields, out, policy)


@app.command("compare")
def compare(
    base: BaseArg,
    new: NewArg,
    metric: MetricOpt = None,
    fail_if_worse: FailIfWorseOpt = False,
) -> None:
    """Pair two result files by id: the mean difference NEW − BASE, its standard error, significance."""
    from itdd_cli.compare import compare_files

    comparison = compare_files(base, new, metric)
    print_comparison(Console(highlight=False, soft_wrap=True), comparison)
    if fail_if_worse and comparison.significantly_worse:
        raise GateError(f"{new} is significantly worse than {base} on {comparison.metric}")


@app.command("inspect")
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
    from itdd_cli.reporting import print_model_info

    loaded = _load(model, dtype, device, trust_remote_code, family, tokenizer, revision, block_size=block_size)
    print_model_info(Console(highlight=False), loaded.info)


@app.command("models")
def models() -> None:
    """Supported checkpoint families, with example hub ids."""
    from itdd_cli.bundled import DESCRIPTIONS
    from itdd_cli.models.registry import FAMILIES
    from itdd_cli.reporting import print_families

    print_families(Console(highlight=False), FAMILIES, DESCRIPTIONS)


@app.command("version", hidden=True)
def version() -> None:
    typer.echo(__version__)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM ends a run like Ctrl-C: finished rows stay written


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    app()  # failures are mapped to one line and an exit code by ERROR_MAP, in _ItddGroup
