"""Thin Typer commands: validate options, call one library function, hand the result to the reporter."""

from __future__ import annotations

import os
import signal
import sys
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from typer._click.core import Context
from typer._click.exceptions import ClickException, NoArgsIsHelpError
from typer.core import TyperGroup

from itdd_cli import __version__, checks
from itdd_cli.errors import GateError, Interrupted, ItddError, ModelError, UsageError
from itdd_cli.estimators.kinds import DEFAULT_ESTIMATOR, Estimator
from itdd_cli.io.formats import Format, InputFormat
from itdd_cli.options import (
    AllowPickleOpt,
    BaseArg,
    BatchSizeOpt,
    BlockSizeOpt,
    ChatTemplateOpt,
    ChoicesFieldOpt,
    ChosenFieldOpt,
    ContextOpt,
    DatasetConfigOpt,
    DatasetOpt,
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
    HtmlOpt,
    HtmlOverwriteOpt,
    IdFieldOpt,
    IndependentOpt,
    InputArg,
    InputFormatOpt,
    KeepBoundaryOpt,
    KeepOpt,
    LabelFieldOpt,
    LimitOpt,
    LinesOpt,
    LongOpt,
    MaxSamplesOpt,
    MaxTokensOpt,
    MetricOpt,
    ModelOpt,
    ModelsOpt,
    NewArg,
    OtherResultsArg,
    OutputOpt,
    OverwriteOpt,
    PerTokenOpt,
    PlotOpt,
    PromptFieldOpt,
    QuietOpt,
    RejectedFieldOpt,
    ResponseFieldOpt,
    ResultsArg,
    ResumeOpt,
    RevisionOpt,
    SamplesOpt,
    SeedOpt,
    ShowIdOpt,
    ShowLimitOpt,
    SkipInvalidOpt,
    SplitOpt,
    StrictOpt,
    SummaryOpt,
    TargetSeOpt,
    TextFieldOpt,
    TokenizerOpt,
    TrustOpt,
    UntilDecidedOpt,
    VersionOpt,
    WorstOpt,
)
from itdd_cli.records import Fields
from itdd_cli.rows import SPECS, Command
from itdd_cli.usage import describe, plain_arguments
from itdd_cli.windows import Long

if TYPE_CHECKING:
    from itdd_cli.io.sources import Source
    from itdd_cli.models import ScoringModel
    from itdd_cli.settings import Settings

# The one map from a failure to its line on stderr and its exit code (first match wins).


def _internal(error: BaseException) -> tuple[str, int]:
    return f"internal error: {type(error).__name__}: {error} (set ITDD_DEBUG=1 for the traceback)", 1


# A reader that closed the pipe (`itdd … | head -1`) ends the run quietly with 141 = 128 + SIGPIPE,
# what a shell reports for any tool stopped by a closed pipe.
BROKEN_PIPE = 141


def _broken_pipe(error: BrokenPipeError) -> tuple[str, int]:
    devnull = os.open(os.devnull, os.O_WRONLY)  # Python's final flush of stdout must not fail again
    os.dup2(devnull, 1)
    os.close(devnull)
    return "", BROKEN_PIPE


ERROR_MAP: list[tuple[type[BaseException], Callable[[Any], tuple[str, int]]]] = [
    (BrokenPipeError, _broken_pipe),
    (ItddError, lambda error: (str(error), error.exit_code)),
    (ClickException, lambda error: (describe(error), error.exit_code)),  # option parsing: exit 2
    (Interrupted, lambda error: (f"interrupted; {error.kept}", 130)),
    (KeyboardInterrupt, lambda error: ("interrupted", 130)),  # before scoring began: nothing was written
    (Exception, _internal),  # a bug or an unforeseen library failure: still one line
]


def _report(error: BaseException) -> int:
    """One line on stderr for `error` (ERROR_MAP), the traceback too under ITDD_DEBUG=1; the exit code."""
    mapping = next((to_line for kind, to_line in ERROR_MAP if isinstance(error, kind)), None)
    if mapping is None:
        raise error
    message, code = mapping(error)
    if os.environ.get("ITDD_DEBUG"):
        traceback.print_exc()
    if message and os.environ.get("RANK", "0") == "0":  # under a launcher, the main process speaks for all
        from itdd_cli.reporting import stderr_console
        from itdd_cli.visible import visible

        stderr_console().print(f"itdd: error: {visible(' '.join(message.split()))}", markup=False)  # one line
    return code


class _ItddGroup(TyperGroup):
    """Applies ERROR_MAP around every command, and to the top level's own options (`itdd --bogus`)."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().make_context(*args, **kwargs)
        except NoArgsIsHelpError:
            raise  # bare `itdd`: the help
        except ClickException as error:
            raise typer.Exit(_report(error)) from None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except BaseException as error:
            if isinstance(error, ClickException) and getattr(error, "ctx", None) is None and ctx.invoked_subcommand:
                command = self.get_command(ctx, ctx.invoked_subcommand)  # so its message says 'itdd nll -h'
                error.ctx = Context(command, info_name=ctx.invoked_subcommand, parent=ctx)  # type: ignore[attr-defined]
            raise typer.Exit(_report(error)) from None


plain_arguments()

app = typer.Typer(
    name="itdd",
    cls=_ItddGroup,
    help="Log-likelihoods of masked-diffusion language models (I-MDCE Monte Carlo estimators).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="Run 'itdd COMMAND -h' for a command's options and examples; README.md has the details.",
)


@app.callback()
def _top(version: VersionOpt = False) -> None:
    """Log-likelihoods of masked-diffusion language models (I-MDCE Monte Carlo estimators)."""


def _examples(*lines: str) -> str:
    """A command's help ends with runnable lines (kept as written: click rewraps other paragraphs)."""
    return "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in lines)


NLL_EXAMPLES = _examples(
    "itdd nll examples/demo.jsonl --format table",
    "itdd nll examples/dna8.jsonl -m dna8 -n 512 -o dna8.csv",
    "cat eval.jsonl | itdd nll -m GSAI-ML/LLaDA-8B-Base | jq .nll_per_token",
)
COND_NLL_EXAMPLES = _examples(
    "itdd cond-nll qa.jsonl -m GSAI-ML/LLaDA-8B-Instruct --chat-template -o answers.jsonl",
    "itdd cond-nll qa.jsonl --prompt-field question --response-field answer",
)
RATIO_EXAMPLES = _examples(
    "itdd ratio examples/shuffled-pairs.jsonl -m demo -n 64 --format table",
    "itdd ratio prefs.jsonl -m Dream-org/Dream-v0-Base-7B -o ratios.jsonl --summary run.json",
)
CHOICE_EXAMPLES = _examples(
    "itdd choice tests/lm_eval_task/sentences.jsonl -m demo -n 64 --format table",
    "itdd choice examples/choice-clear.jsonl -m demo --until-decided 0.01 -n 8 --max-samples 128",
    "itdd choice mmlu.jsonl -m GSAI-ML/LLaDA-8B-Base -o picks.jsonl --summary run.json --fail-below accuracy=0.6",
)
COMPARE_EXAMPLES = _examples(
    "itdd compare base.jsonl new.jsonl",
    "itdd compare base.csv new.csv --metric bits_per_token --fail-if-worse",
)
SHOW_EXAMPLES = _examples(
    "itdd nll examples/demo.jsonl --per-token -o demo.jsonl && itdd show demo.jsonl",
    "itdd show demo.jsonl --id s1 --worst 10",
    "itdd show demo.jsonl --html demo.html",
    "itdd show base.jsonl tuned.jsonl --html diff.html   # tuned − base per token",
)
INSPECT_EXAMPLES = _examples("itdd inspect -m demo", "itdd inspect -m GSAI-ML/LLaDA-8B-Base --device cpu")
MODELS_EXAMPLES = _examples("itdd models", "itdd models | grep -i llada")


def _batch_rows(value: str) -> int | None:
    return checks.batch_rows("--batch-size", value)


def _load(model: str | None, dtype: Dtype, device: str, trust_remote_code: bool, family: str | None,
          tokenizer: str | None, revision: str | None, device_map: str | None = None,
          allow_pickle: bool = False, block_size: int | None = None) -> ScoringModel:  # fmt: skip
    from itdd_cli.bundled import model_or_default
    from itdd_cli.models import LoadOptions, load_model
    from itdd_cli.reporting import notice

    model, is_default = model_or_default(model)
    if is_default:
        notice(f"no --model given: scoring with the bundled '{model}' model (tiny, for trying itdd out); "
               "pass -m with a checkpoint or hub id (e.g. GSAI-ML/LLaDA-8B-Base) for real numbers")  # fmt: skip
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
              independent: bool = False, chat_template: bool = False, keep_boundary: bool = False,
              strict: bool = False, target_se: float | None = None, max_samples: int | None = None,
              until_decided: float | None = None, long: Long = Long.error, context: int = 0,
              per_token: bool = False) -> Settings:  # fmt: skip
    from itdd_cli.settings import Settings

    settings = Settings(
        estimator=estimator,
        samples=samples,
        seed=seed,
        independent=independent,
        batch_rows=_batch_rows(batch_size),
        max_tokens=max_tokens,
        chat_template=chat_template,
        long=long,
        context=context,
        keep_boundary=keep_boundary,
        strict=strict,
        target_se=target_se,
        until_decided=until_decided,
        max_samples=max_samples,
        per_token=per_token,
    )
    checks.combination(settings, lambda name: "--" + name.replace("_", "-"))  # `--max-samples`: the option
    return settings


def _output(input_path: str | None, output: str | None, fmt: Format, overwrite: bool, resume: bool,
            summary: str | None, quiet: bool, per_token: bool = False) -> Any:  # fmt: skip
    """Input, output and summary checked (and the output locked) before the model loads."""
    from itdd_cli.io.formats import resolve_format
    from itdd_cli.session import Output, prepare_output

    if per_token and resolve_format(fmt, output, sys.stdout) is Format.table:
        raise UsageError("--per-token adds a list of tokens to every row, which a table cannot show: write JSONL or "
                         "CSV (-o FILE.jsonl, or --format jsonl) and look at it with 'itdd show FILE'")  # fmt: skip
    out = Output(path=output, fmt=fmt, overwrite=overwrite, resume=resume, summary_path=summary, quiet=quiet)
    return prepare_output(out, input_path)


def _policy(skip_invalid: bool, fail_above: list[str] | None, fail_below: list[str] | None,
            revision: str | None) -> Any:  # fmt: skip
    from itdd_cli.session import Policy
    from itdd_cli.summary import parse_gates

    gates = parse_gates(fail_above or [], fail_below or [])  # a bad gate fails before the model loads
    return Policy(skip_invalid=skip_invalid, gates=gates, revision=revision)


def _source(input_path: str | None, input_format: InputFormat, lines: bool, dataset: str | None,
            dataset_config: str | None, split: str | None, limit: int | None) -> Source:  # fmt: skip
    if lines:
        if input_format not in (InputFormat.auto, InputFormat.lines):
            raise UsageError(f"--lines contradicts --input-format {input_format.value}")
        input_format = InputFormat.lines
    if dataset is not None and input_path not in (None, "-"):
        raise UsageError("give INPUT or --dataset, not both")
    if dataset is None and (dataset_config or split):
        raise UsageError("--dataset-config and --split name a part of a --dataset")
    from itdd_cli.io.sources import Source

    return Source(input_path, input_format, dataset, dataset_config, split, limit)


def _keep(command: Command, keep: list[str] | None) -> tuple[str, ...]:
    names = tuple(name.strip() for item in keep or [] for name in item.split(",") if name.strip())
    return checks.kept_names(names, SPECS[command].field, "--keep")


def _study(command: Command, models: list[str], plot: str | None, source: Source, settings: Settings, fields: Fields,
           output: Any, policy: Any, load: Callable[[str], ScoringModel]) -> bool:  # fmt: skip
    """Several checkpoints (or a directory of them): score each in turn. False: a plain one-model run."""
    from itdd_cli.checkpoints import expand

    names = expand(models)
    repeated = next((name for index, name in enumerate(names) if name in names[:index]), None)
    if repeated is not None:  # its rows would carry the same `model` and could not be told apart
        raise UsageError(f"-m {repeated} is given twice (rows are told apart by their model): give each "
                         "checkpoint once")  # fmt: skip
    if names == models and len(names) < 2:
        if plot:
            raise UsageError("--plot draws several checkpoints: give -m more than once, or a checkpoint-* directory")
        return False
    from itdd_cli.io.formats import resolve_format
    from itdd_cli.study import check_study_gates, run_study, write_study_json
    from itdd_cli.study_view import check_plot, print_study, save_plot

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
    return True


def _run_models(command: Command, names: list[str | None], plot: str | None, source: Source, settings: Settings,
                fields: Fields, output: Any, policy: Any,
                load: Callable[[str | None], ScoringModel]) -> None:  # fmt: skip
    """One checkpoint (loaded lazily), or several in turn; the output is released whatever happens."""
    try:
        from itdd_cli.runner import check_samples

        check_samples(settings.samples, 1)  # the smallest record: an impossible -n is refused before loading
        if names[0] is None or not _study(command, names, plot, source, settings, fields, output, policy, load):
            _run(command, source, lambda: load(names[0]), settings, fields, output, policy)
    finally:
        output.target.close()


def _model_names(models: list[str] | None) -> list[str | None]:
    if models:
        return list(models)
    return [os.environ.get("ITDD_MODEL") or None]


def _run(command: Command, input_path: str | Source | None, load: Callable[[], ScoringModel], settings: Settings,
         fields: Fields, output: Any, policy: Any) -> None:  # fmt: skip
    """Load the model and score; the output's lock and temporary file are released whatever happens."""
    from itdd_cli.session import run_scoring

    try:
        run_scoring(command, input_path, load(), settings, fields, output, policy)
    finally:
        output.target.close()


@app.command("nll", epilog=NLL_EXAMPLES)
def nll(
    input_path: InputArg = None,
    model: ModelsOpt = None,
    plot: PlotOpt = None,
    output: OutputOpt = None,
    overwrite: OverwriteOpt = False,
    resume: ResumeOpt = False,
    fmt: FormatOpt = Format.auto,
    samples: SamplesOpt = 128,
    estimator: EstimatorOpt = DEFAULT_ESTIMATOR,
    target_se: TargetSeOpt = None,
    max_samples: MaxSamplesOpt = None,
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
    long: LongOpt = Long.error,
    context: ContextOpt = 0,
    per_token: PerTokenOpt = False,
    input_format: InputFormatOpt = InputFormat.auto,
    lines: LinesOpt = False,
    dataset: DatasetOpt = None,
    dataset_config: DatasetConfigOpt = None,
    split: SplitOpt = None,
    limit: LimitOpt = None,
    keep: KeepOpt = None,
    skip_invalid: SkipInvalidOpt = False,
    strict: StrictOpt = False,
    summary: SummaryOpt = None,
    fail_above: FailAboveOpt = None,
    fail_below: FailBelowOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """−log p(text) for each record's text field."""
    settings = _settings(estimator, samples, seed, batch_size, max_tokens, strict=strict, target_se=target_se,
                         max_samples=max_samples, long=long, context=context, per_token=per_token)  # fmt: skip
    policy = _policy(skip_invalid, fail_above, fail_below, revision)
    source = _source(input_path, input_format, lines, dataset, dataset_config, split, limit)
    out = _output(source.path, output, fmt, overwrite, resume, summary, quiet, per_token)
    fields = Fields(text=text_field, id=id_field, keep=_keep(Command.nll, keep))
    _run_models(Command.nll, _model_names(model), plot, source, settings, fields, out, policy,
                lambda name: _load(name, dtype, device, trust_remote_code, family, tokenizer, revision, device_map,
                                   allow_pickle, block_size))  # fmt: skip


@app.command("cond-nll", epilog=COND_NLL_EXAMPLES)
def cond_nll(
    input_path: InputArg = None,
    model: ModelsOpt = None,
    plot: PlotOpt = None,
    output: OutputOpt = None,
    overwrite: OverwriteOpt = False,
    resume: ResumeOpt = False,
    fmt: FormatOpt = Format.auto,
    samples: SamplesOpt = 128,
    estimator: EstimatorOpt = DEFAULT_ESTIMATOR,
    target_se: TargetSeOpt = None,
    max_samples: MaxSamplesOpt = None,
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
    keep_boundary: KeepBoundaryOpt = False,
    prompt_field: PromptFieldOpt = "prompt",
    response_field: ResponseFieldOpt = "response",
    id_field: IdFieldOpt = "id",
    per_token: PerTokenOpt = False,
    input_format: InputFormatOpt = InputFormat.auto,
    lines: LinesOpt = False,
    dataset: DatasetOpt = None,
    dataset_config: DatasetConfigOpt = None,
    split: SplitOpt = None,
    limit: LimitOpt = None,
    keep: KeepOpt = None,
    skip_invalid: SkipInvalidOpt = False,
    strict: StrictOpt = False,
    summary: SummaryOpt = None,
    fail_above: FailAboveOpt = None,
    fail_below: FailBelowOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """−log p(response | prompt); the prompt is never masked."""
    settings = _settings(estimator, samples, seed, batch_size, max_tokens, chat_template=chat_template,
                         keep_boundary=keep_boundary, strict=strict, target_se=target_se,
                         max_samples=max_samples, per_token=per_token)  # fmt: skip
    policy = _policy(skip_invalid, fail_above, fail_below, revision)
    source = _source(input_path, input_format, lines, dataset, dataset_config, split, limit)
    out = _output(source.path, output, fmt, overwrite, resume, summary, quiet, per_token)
    fields = Fields(prompt=prompt_field, response=response_field, id=id_field, keep=_keep(Command.cond_nll, keep))
    _run_models(Command.cond_nll, _model_names(model), plot, source, settings, fields, out, policy,
                lambda name: _load(name, dtype, device, trust_remote_code, family, tokenizer, revision, device_map,
                                   allow_pickle, block_size))  # fmt: skip


@app.command("ratio", epilog=RATIO_EXAMPLES)
def ratio(
    input_path: InputArg = None,
    model: ModelOpt = None,
    output: OutputOpt = None,
    overwrite: OverwriteOpt = False,
    resume: ResumeOpt = False,
    fmt: FormatOpt = Format.auto,
    samples: SamplesOpt = 128,
    estimator: EstimatorOpt = DEFAULT_ESTIMATOR,
    target_se: TargetSeOpt = None,
    max_samples: MaxSamplesOpt = None,
    seed: SeedOpt = 0,
    independent: IndependentOpt = False,
    until_decided: UntilDecidedOpt = None,
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
    keep_boundary: KeepBoundaryOpt = False,
    prompt_field: PromptFieldOpt = "prompt",
    chosen_field: ChosenFieldOpt = "chosen",
    rejected_field: RejectedFieldOpt = "rejected",
    id_field: IdFieldOpt = "id",
    input_format: InputFormatOpt = InputFormat.auto,
    lines: LinesOpt = False,
    dataset: DatasetOpt = None,
    dataset_config: DatasetConfigOpt = None,
    split: SplitOpt = None,
    limit: LimitOpt = None,
    keep: KeepOpt = None,
    skip_invalid: SkipInvalidOpt = False,
    strict: StrictOpt = False,
    summary: SummaryOpt = None,
    fail_above: FailAboveOpt = None,
    fail_below: FailBelowOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """log p(chosen | prompt) − log p(rejected | prompt), with coupled masks by default."""
    settings = _settings(estimator, samples, seed, batch_size, max_tokens, independent, chat_template, keep_boundary,
                         strict, target_se=target_se, max_samples=max_samples,
                         until_decided=until_decided)  # fmt: skip
    policy = _policy(skip_invalid, fail_above, fail_below, revision)
    source = _source(input_path, input_format, lines, dataset, dataset_config, split, limit)
    out = _output(source.path, output, fmt, overwrite, resume, summary, quiet)
    fields = Fields(prompt=prompt_field, chosen=chosen_field, rejected=rejected_field, id=id_field,
                    keep=_keep(Command.ratio, keep))  # fmt: skip
    _run(Command.ratio, source,
         lambda: _load(model, dtype, device, trust_remote_code, family, tokenizer, revision, device_map, allow_pickle,
                       block_size),
         settings, fields, out, policy)  # fmt: skip


@app.command("choice", epilog=CHOICE_EXAMPLES)
def choice(
    input_path: InputArg = None,
    model: ModelOpt = None,
    output: OutputOpt = None,
    overwrite: OverwriteOpt = False,
    resume: ResumeOpt = False,
    fmt: FormatOpt = Format.auto,
    samples: SamplesOpt = 128,
    estimator: EstimatorOpt = DEFAULT_ESTIMATOR,
    until_decided: UntilDecidedOpt = None,
    max_samples: MaxSamplesOpt = None,
    seed: SeedOpt = 0,
    independent: IndependentOpt = False,
    batch_size: BatchSizeOpt = "auto",
    max_tokens: MaxTokensOpt = None,
    dtype: DtypeOpt = Dtype.auto,
    device: DeviceOpt = "auto",
    device_map: DeviceMapOpt = None,
    trust_remote_code: TrustOpt = False,
    allow_pickle: AllowPickleOpt = False,
    family: FamilyOpt = None,
    tokenizer: TokenizerOpt = None,
    revision: RevisionOpt = None,
    chat_template: ChatTemplateOpt = False,
    prompt_field: PromptFieldOpt = "prompt",
    choices_field: ChoicesFieldOpt = "choices",
    label_field: LabelFieldOpt = "label",
    id_field: IdFieldOpt = "id",
    skip_invalid: SkipInvalidOpt = False,
    summary: SummaryOpt = None,
    fail_above: FailAboveOpt = None,
    fail_below: FailBelowOpt = None,
    quiet: QuietOpt = False,
    strict: StrictOpt = False,
) -> None:
    """k-way multiple choice: log p(choice | prompt) for each choice, the pick and the accuracy."""
    settings = _settings(estimator, samples, seed, batch_size, max_tokens, independent=independent,
                         chat_template=chat_template, strict=strict, until_decided=until_decided,
                         max_samples=max_samples)  # fmt: skip
    policy = _policy(skip_invalid, fail_above, fail_below, revision)
    out = _output(input_path, output, fmt, overwrite, resume, summary, quiet)
    fields = Fields(prompt=prompt_field, choices=choices_field, label=label_field, id=id_field)
    _run(Command.choice, input_path,
         lambda: _load(model, dtype, device, trust_remote_code, family, tokenizer, revision, device_map, allow_pickle),
         settings, fields, out, policy)  # fmt: skip


LM_EVAL_HELP = """Usage: itdd lm-eval [LM-EVAL ARGUMENTS]...

Run lm-evaluation-harness with itdd's `itdd` model backend registered; every argument goes to
lm-eval's own command line unchanged (`itdd lm-eval run --help` lists them). Needs the extra:
pip install 'itdd[lm-eval]'.

Model args (--model_args, comma-separated): pretrained (hub id, directory or bundled name; default
demo), samples (draws per question, 128), estimator, seed, independent, max_tokens, dtype, device,
family, tokenizer, revision, trust_remote_code, chat_template, mc_log (JSONL of per-request Monte
Carlo standard errors), until_decided and max_samples (rounds until each question's pick is decided,
as `itdd choice --until-decided`; the results JSON's config.itdd_monte_carlo gives, per task, the mean
SE, the share decided and the forward rows).

Examples:
  itdd lm-eval run --model itdd --model_args pretrained=GSAI-ML/LLaDA-8B-Base,samples=128 --tasks arc_easy
  itdd lm-eval run --model itdd --model_args pretrained=demo,samples=32 --include_path my_tasks --tasks my_task
  torchrun --nproc_per_node 2 -m itdd_cli lm-eval run --model itdd --model_args pretrained=... --tasks piqa
"""


@app.command(
    "lm-eval",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []},
    add_help_option=False,
)
def lm_eval(ctx: typer.Context) -> None:
    """Run lm-evaluation-harness with the `itdd` backend (`itdd lm-eval --help`; every lm-eval flag works)."""
    if ctx.args in ([], ["--help"], ["-h"]):
        typer.echo(LM_EVAL_HELP, nl=False)
        return
    try:
        from itdd_cli.lm_eval_backend import run_lm_eval
    except ImportError as error:
        raise UsageError(f"lm-eval is not installed ({error}); pip install 'itdd[lm-eval]'") from None
    try:
        run_lm_eval(ctx.args)
    except ItddError:
        raise
    except Exception as error:  # lm-eval's own failures (unknown task, bad flag value): one line, exit 1
        raise ModelError(f"lm-eval failed: {type(error).__name__}: {error}") from error


def _stdout(command: str) -> Console:
    """The console a command prints to; with standard output closed (`>&-`) its answer would vanish."""
    if sys.stdout is None:
        raise UsageError(f"standard output is closed; itdd {command} prints its answer there")
    return Console(highlight=False, soft_wrap=command == "compare")


@app.command("compare", epilog=COMPARE_EXAMPLES)
def compare(
    base: BaseArg,
    new: NewArg,
    metric: MetricOpt = None,
    fail_if_worse: FailIfWorseOpt = False,
) -> None:
    """Pair two result files by id: the mean difference NEW − BASE, its standard error, significance."""
    from itdd_cli.compare import compare_files
    from itdd_cli.reporting import print_comparison

    console = _stdout("compare")
    comparison = compare_files(base, new, metric)
    print_comparison(console, comparison)
    if fail_if_worse and comparison.significantly_worse:
        raise GateError(f"{new} is significantly worse than {base} on {comparison.metric}")


@app.command("show", epilog=SHOW_EXAMPLES)
def show(
    results: ResultsArg,
    other: OtherResultsArg = None,
    html: HtmlOpt = None,
    overwrite: HtmlOverwriteOpt = False,
    ids: ShowIdOpt = None,
    limit: ShowLimitOpt = None,
    worst: WorstOpt = 5,
) -> None:
    """Where the nats go: each token of a --per-token result file coloured by its share of the NLL."""
    from itdd_cli.heat import TERMINAL_ROWS, read_heat
    from itdd_cli.heat_diff import read_diff

    def read(most: int | None) -> Any:  # OTHER: the per-token difference OTHER − RESULTS
        return read_heat(results, ids, most) if other is None else read_diff(results, other, ids, most)

    if html:
        from itdd_cli.heat_html import write_page

        if other is not None and os.path.realpath(html) == os.path.realpath(other):
            raise UsageError(f"--html {html} is the result file {other}; name another file")
        write_page(read(limit), html, overwrite, results)
        return
    from itdd_cli.heat_view import print_heat

    console = _stdout("show")
    heat = read(limit or (None if ids else TERMINAL_ROWS))
    print_heat(console, heat, worst)


@app.command("inspect", epilog=INSPECT_EXAMPLES)
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

    console = _stdout("inspect")
    loaded = _load(model, dtype, device, trust_remote_code, family, tokenizer, revision, block_size=block_size)
    print_model_info(console, loaded.info)


@app.command("models", epilog=MODELS_EXAMPLES)
def models() -> None:
    """Supported checkpoint families, with example hub ids."""
    from itdd_cli.bundled import DESCRIPTIONS
    from itdd_cli.models.registry import FAMILIES
    from itdd_cli.reporting import print_families

    print_families(_stdout("models"), FAMILIES, DESCRIPTIONS)


@app.command("version", hidden=True)
def version() -> None:
    typer.echo(__version__)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # SIGTERM ends a run like Ctrl-C: finished rows stay written


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    app()  # failures are mapped to one line and an exit code by ERROR_MAP, in _ItddGroup
