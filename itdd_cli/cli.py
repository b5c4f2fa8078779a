"""Thin Typer commands: validate options, call the runner, hand rows to the reporter."""

from __future__ import annotations

import functools
import os
import sys
import time
import traceback
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TextIO, TypeVar

import typer
from rich.console import Console

from itdd_cli import __version__
from itdd_cli.errors import ItddError, UsageError
from itdd_cli.estimators import Estimator
from itdd_cli.io.reader import open_input, read_objects
from itdd_cli.models import FAMILIES, LoadOptions, ScoringModel, load_model
from itdd_cli.options import (
    BatchSizeOpt,
    ChatTemplateOpt,
    ChosenFieldOpt,
    DeviceMapOpt,
    DeviceOpt,
    Dtype,
    DtypeOpt,
    EstimatorOpt,
    FamilyOpt,
    FormatOpt,
    IdFieldOpt,
    IndependentOpt,
    InputArg,
    MaxTokensOpt,
    ModelOpt,
    OutputOpt,
    OverwriteOpt,
    PromptFieldOpt,
    QuietOpt,
    RejectedFieldOpt,
    ResponseFieldOpt,
    RevisionOpt,
    SamplesOpt,
    SeedOpt,
    TextFieldOpt,
    TokenizerOpt,
    TrustOpt,
)
from itdd_cli.parallel import current_shard, score_sharded
from itdd_cli.records import Fields
from itdd_cli.reporting import (
    Format,
    console_for,
    make_sink,
    print_families,
    print_model_info,
    print_summary,
    progress_bar,
    resolve_format,
)
from itdd_cli.runner import Command, Settings, Summary, score

app = typer.Typer(
    name="itdd",
    help="Log-likelihoods of masked-diffusion language models (I-MDCE Monte Carlo estimators).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
F = TypeVar("F", bound=Callable[..., Any])


def _stderr() -> Console:
    return Console(file=sys.stderr, soft_wrap=True, highlight=False)


def exits_cleanly(command: F) -> F:
    """Map every failure to one line on stderr and its exit code; ITDD_DEBUG=1 adds the traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except ItddError as error:
            _fail(str(error), error.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except Exception as error:  # a bug or an unforeseen library failure: still one line
            _fail(f"internal error: {type(error).__name__}: {error} (set ITDD_DEBUG=1 for the traceback)", 1)

    return wrapper  # type: ignore[return-value]


def _fail(message: str, code: int) -> None:
    if os.environ.get("ITDD_DEBUG"):
        traceback.print_exc()
    if os.environ.get("RANK", "0") != "0":  # under a launcher, the main process speaks for all
        raise typer.Exit(code)
    _stderr().print(f"itdd: error: {' '.join(message.split())}", markup=False)  # always one line
    raise typer.Exit(code)


def _batch_rows(value: str) -> int | None:
    if value == "auto":
        return None
    if value.isdigit() and int(value) > 0:
        return int(value)
    raise UsageError(f"--batch-size {value!r}: expected a positive integer or 'auto'")


def _load(model: str | None, dtype: Dtype, device: str, trust: bool, family: str | None, tokenizer: str | None,
          revision: str | None, device_map: str | None = None) -> ScoringModel:  # fmt: skip
    if model is None:
        raise UsageError("no model given: pass -m/--model (a local directory or hub id) or set ITDD_MODEL")
    if device_map not in (None, "auto"):
        raise UsageError(f"--device-map {device_map!r}: only 'auto' is supported")
    return load_model(LoadOptions(model, dtype.value, device, trust, family, tokenizer, revision, device_map))


def _open_output(output: str | None, overwrite: bool, stack: ExitStack) -> TextIO:
    if output is None or output == "-":
        return sys.stdout
    path = Path(output)
    if path.exists() and not overwrite:
        raise UsageError(f"{output} exists; pass --overwrite to replace it")
    try:
        return stack.enter_context(path.open("w", encoding="utf-8", newline=""))
    except OSError as error:
        raise UsageError(f"cannot write {output}: {error.strerror}") from error


def _score(command: Command, input_path: str | None, model: ScoringModel, settings: Settings, fields: Fields,
           output: str | None, overwrite: bool, fmt: Format, quiet: bool) -> None:  # fmt: skip
    shard = current_shard()
    with ExitStack() as stack:
        stream = _open_output(output, overwrite, stack) if shard.is_main else stack.enter_context(open(os.devnull, "w"))
        source = open_input(input_path)
        if source is not sys.stdin.buffer:
            stack.callback(source.close)
        resolved = resolve_format(fmt, output, stream)
        sink = make_sink(resolved, stream, command)
        summary = Summary(command)
        objects = read_objects(source)
        if shard.world > 1:
            rows = score_sharded(objects, lambda chunk: score(command, chunk, model, settings, fields), shard)
        else:
            rows = score(command, objects, model, settings, fields)
        try:
            with progress_bar(input_path, enabled=shard.is_main and not quiet and sys.stderr.isatty()) as advance:
                for row in rows:
                    sink.write(row)
                    summary.add(row)
                    advance(summary)
        finally:
            sink.close()  # what finished is written even when a later record fails
        summary.finished = time.perf_counter()
        if not shard.is_main:
            return
        if resolved is Format.table:
            print_summary(console_for(stream), summary, model.info, settings)
        elif not quiet:
            print_summary(_stderr(), summary, model.info, settings)


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
    fmt: FormatOpt = Format.auto,
    samples: SamplesOpt = 128,
    estimator: EstimatorOpt = Estimator.stratified,
    seed: SeedOpt = 0,
    batch_size: BatchSizeOpt = "auto",
    max_tokens: MaxTokensOpt = None,
    dtype: DtypeOpt = Dtype.auto,
    device: DeviceOpt = "auto",
    trust_remote_code: TrustOpt = False,
    family: FamilyOpt = None,
    tokenizer: TokenizerOpt = None,
    revision: RevisionOpt = None,
    device_map: DeviceMapOpt = None,
    text_field: TextFieldOpt = "text",
    id_field: IdFieldOpt = "id",
    quiet: QuietOpt = False,
) -> None:
    """−log p(text) for each record's text field."""
    settings = _settings(estimator, samples, seed, False, batch_size, max_tokens)
    loaded = _load(model, dtype, device, trust_remote_code, family, tokenizer, revision, device_map)
    fields = Fields(text=text_field, id=id_field)
    _score(Command.nll, input_path, loaded, settings, fields, output, overwrite, fmt, quiet)


@app.command("cond-nll")
@exits_cleanly
def cond_nll(
    input_path: InputArg = None,
    model: ModelOpt = None,
    output: OutputOpt = None,
    overwrite: OverwriteOpt = False,
    fmt: FormatOpt = Format.auto,
    samples: SamplesOpt = 128,
    estimator: EstimatorOpt = Estimator.stratified,
    seed: SeedOpt = 0,
    batch_size: BatchSizeOpt = "auto",
    max_tokens: MaxTokensOpt = None,
    dtype: DtypeOpt = Dtype.auto,
    device: DeviceOpt = "auto",
    trust_remote_code: TrustOpt = False,
    family: FamilyOpt = None,
    tokenizer: TokenizerOpt = None,
    revision: RevisionOpt = None,
    device_map: DeviceMapOpt = None,
    prompt_field: PromptFieldOpt = "prompt",
    response_field: ResponseFieldOpt = "response",
    id_field: IdFieldOpt = "id",
    chat_template: ChatTemplateOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """−log p(response | prompt); the prompt is never masked."""
    settings = _settings(estimator, samples, seed, False, batch_size, max_tokens, chat_template)
    loaded = _load(model, dtype, device, trust_remote_code, family, tokenizer, revision, device_map)
    fields = Fields(prompt=prompt_field, response=response_field, id=id_field)
    _score(Command.cond_nll, input_path, loaded, settings, fields, output, overwrite, fmt, quiet)


@app.command("ratio")
@exits_cleanly
def ratio(
    input_path: InputArg = None,
    model: ModelOpt = None,
    output: OutputOpt = None,
    overwrite: OverwriteOpt = False,
    fmt: FormatOpt = Format.auto,
    samples: SamplesOpt = 128,
    estimator: EstimatorOpt = Estimator.stratified,
    seed: SeedOpt = 0,
    independent: IndependentOpt = False,
    batch_size: BatchSizeOpt = "auto",
    max_tokens: MaxTokensOpt = None,
    dtype: DtypeOpt = Dtype.auto,
    device: DeviceOpt = "auto",
    trust_remote_code: TrustOpt = False,
    family: FamilyOpt = None,
    tokenizer: TokenizerOpt = None,
    revision: RevisionOpt = None,
    device_map: DeviceMapOpt = None,
    prompt_field: PromptFieldOpt = "prompt",
    chosen_field: ChosenFieldOpt = "chosen",
    rejected_field: RejectedFieldOpt = "rejected",
    id_field: IdFieldOpt = "id",
    chat_template: ChatTemplateOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """log p(chosen | prompt) − log p(rejected | prompt), with coupled masks by default."""
    settings = _settings(estimator, samples, seed, independent, batch_size, max_tokens, chat_template)
    loaded = _load(model, dtype, device, trust_remote_code, family, tokenizer, revision, device_map)
    fields = Fields(prompt=prompt_field, chosen=chosen_field, rejected=rejected_field, id=id_field)
    _score(Command.ratio, input_path, loaded, settings, fields, output, overwrite, fmt, quiet)


@app.command("inspect")
@exits_cleanly
def inspect(
    model: ModelOpt = None,
    dtype: DtypeOpt = Dtype.auto,
    device: DeviceOpt = "auto",
    trust_remote_code: TrustOpt = False,
    family: FamilyOpt = None,
    tokenizer: TokenizerOpt = None,
    revision: RevisionOpt = None,
) -> None:
    """What itdd detected for a model: family, mask id, framing, maximum length, …"""
    loaded = _load(model, dtype, device, trust_remote_code, family, tokenizer, revision)
    print_model_info(Console(highlight=False), loaded.info)


@app.command("models")
@exits_cleanly
def models() -> None:
    """Supported checkpoint families, with example hub ids."""
    print_families(Console(highlight=False), FAMILIES)


@app.command("version", hidden=True)
def version() -> None:
    typer.echo(__version__)


def main() -> None:
    app()
