"""Every CLI option, declared once and reused by the commands that take it.

Each option shows its default in the help (`[default: …]`, written out where it is not a plain
value) and a metavar saying what it takes; bad values are reported in itdd's words by `usage.py`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer

from itdd_cli.bundled import DEFAULT as DEFAULT_MODEL
from itdd_cli.core import checks
from itdd_cli.core.windows import Long
from itdd_cli.estimators.kinds import DEFAULT_ESTIMATOR, Estimator
from itdd_cli.io.formats import Format, InputFormat, input_format_help
from itdd_cli.version import __version__


class Dtype(StrEnum):
    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"
    bf16 = "bf16"  # lm-eval's and PyTorch's spellings (checks.DTYPE_ALIASES): the dtype each names
    fp16 = "fp16"
    half = "half"
    fp32 = "fp32"
    float = "float"


def _shown(help_text: str, default: str) -> str:
    """Help with a default that is not a plain value (typer would print it in parentheses)."""
    return f"{help_text}  [default: {default}]"


def _decision_level(value: float | None) -> float | None:
    return None if value is None else checks.decision_level("--until-decided", value)


def _seed(value: int) -> int:
    return checks.seed("--seed", value)


def _seed_text(text: str | int) -> int:
    """An integer of any length: Python refuses to read one of over 4,300 digits, which is out of range."""
    return text if isinstance(text, int) else checks.seed("--seed", text)  # an int: the default


def _estimator_help() -> str:
    advice = "; ".join(f"{member.value}: {member.spec.advice}" for member in Estimator)
    return f"how masks are drawn; the default suits almost every use — {advice}"


# parameter name -> (its Annotated type, its default): what `signature.takes` builds a command from.
OPTIONS: dict[str, tuple[Any, Any]] = {}


def option(param: str, kind: Any, *names: str, default: Any = None, shown: str | None = None, help: str = "",
           **declared: Any) -> Any:  # fmt: skip
    """One option, declared once: its type and typer declaration (`shown`: a default the help writes
    out in words, where it is not a plain value), registered under its parameter name."""
    if shown is not None:
        help, declared["show_default"] = _shown(help, shown), False
    maker = typer.Argument if not names else typer.Option
    annotated = Annotated[kind, maker(*names, help=help, **declared)]
    assert param not in OPTIONS, f"two options declared as the parameter {param!r}"
    OPTIONS[param] = (annotated, default)
    return annotated


_MODEL_DEFAULT = f"$ITDD_MODEL, else the bundled {DEFAULT_MODEL}"
InputArg = option("input_path", str | None, metavar="INPUT", shown="standard input",
                  help="file to score (JSONL unless --input-format or its extension says otherwise), or '-'")
ModelOpt = option("model", str | None, "--model", "-m", envvar="ITDD_MODEL", metavar="MODEL", shown=_MODEL_DEFAULT,
                  help="hub id (e.g. GSAI-ML/LLaDA-8B-Base), local checkpoint or LoRA adapter directory, or a bundled "
                       "model: "
                       "demo (tiny English, for trying itdd out) or dna8 (synthetic DNA with known answers)")
ModelsOpt = option("models", list[str] | None, "--model", "-m", metavar="MODEL", shown=_MODEL_DEFAULT,
                   help="hub id, local checkpoint or LoRA adapter directory, bundled model (demo, dna8), or a "
                        "directory of checkpoint-* folders; repeat to score every record under each checkpoint")
PlotOpt = option("plot", str | None, "--plot", metavar="PATH", shown="none",
                 help="several checkpoints: draw bits per byte by checkpoint to this .png or .svg")
OutputOpt = option("output", str | None, "--output", "-o", metavar="PATH", shown="standard output",
                   help="write results here (.csv: CSV, otherwise JSONL)")
OverwriteOpt = option("overwrite", bool, "--overwrite", default=False, shown="off",
                      help="replace an existing --output file")
ResumeOpt = option("resume", bool, "--resume", default=False, shown="off", help="continue a partial --output file")
FormatOpt = option("fmt", Format, "--format", default=Format.auto,
                   help="auto: by --output's extension, else a table on a terminal and JSONL in a pipe")
SummaryOpt = option("summary", str | None, "--summary", metavar="PATH", shown="none",
                    help="write a JSON summary of the run here (for CI)")
FailAboveOpt = option("fail_above", list[str] | None, "--fail-above", metavar="METRIC=VALUE", shown="none",
                      help="exit 4 when the summary's METRIC is above VALUE (repeatable)")
FailBelowOpt = option("fail_below", list[str] | None, "--fail-below", metavar="METRIC=VALUE", shown="none",
                      help="exit 4 when the summary's METRIC is below VALUE (repeatable)")
QuietOpt = option("quiet", bool, "--quiet", "-q", default=False, shown="off",
                  help="no progress bar and no summary on standard error")

SamplesOpt = option("samples", int, "--samples", "-n", default=128, min=checks.MIN_SAMPLES, metavar="N",
                    help="forward passes per record (per side for ratio), the control variate's pilot included")
EstimatorOpt = option("estimator", Estimator, "--estimator", default=DEFAULT_ESTIMATOR, help=_estimator_help())
SeedOpt = option("seed", int, "--seed", default=0, metavar="INT", callback=_seed, parser=_seed_text,
                 help="base seed, -2**127 to 2**127 - 1; a record's draws depend only on it and its token ids")
BatchSizeOpt = option("batch_size", str, "--batch-size", default="auto", metavar="ROWS|auto",
                      help="forward rows per batch, or 'auto' to fill --max-tokens")
MaxTokensOpt = option("max_tokens", int | None, "--max-tokens", min=1, metavar="TOKENS",
                      shown="2048 on CPU, 16384 on GPU",
                      help="padded tokens per forward batch when --batch-size is auto")
StrictOpt = option("strict", bool, "--strict", default=False, shown="warn and score it",
                   help="refuse (exit 3) a record whose text the tokenizer drops or maps to unknown tokens")
TargetSeOpt = option("target_se", float | None, "--target-se", min=0.0, metavar="NATS", shown="off",
                     help="draw more rounds until each record's SE (of nll, or of log_ratio) is at most this; a "
                          "precision goal, not a coverage guarantee")
MaxSamplesOpt = option("max_samples", int | None, "--max-samples", min=checks.MIN_SAMPLES, show_default=False,
                       metavar="N", help="cap on passes per record with --target-se / --until-decided "
                                         "[default: 8 × --samples]")
UntilDecidedOpt = option("until_decided", float | None, "--until-decided", callback=_decision_level,
                         metavar="LEVEL", shown="off",
                         help="draw rounds (-n, then doubling) until the pick is decided by an anytime-valid rule "
                              "with error rate α ≤ LEVEL (0.01), or a z ≥ 1 meaning α = P(|N(0,1)| > z) (3: 0.0027); "
                              "up to --max-samples")
CfgOpt = option("cfg", float, "--cfg", default=0.0, metavar="S",
                 callback=lambda value: checks.number("--cfg", value, 0.0),
                 help="classifier-free guidance scale (LLaDA's protocol): each pass is paired with one whose prompt is "
                      "all masked, logits uncond + (S+1)(cond − uncond); a guided score (guided_* fields), not a "
                      "likelihood; 0: off")
IndependentOpt = option("independent", bool, "--independent", default=False, shown="coupled",
                        help="draw each side's (choice's) masks separately instead of coupling them")

DtypeOpt = option("dtype", Dtype, "--dtype", default=Dtype.auto, help="auto: bfloat16 on GPU, float32 on CPU")
DeviceOpt = option("device", str, "--device", default="auto", metavar="DEVICE",
                   help="auto (a GPU if there is one), cpu, cuda, cuda:N, mps or xpu")
DeviceMapOpt = option("device_map", str | None, "--device-map", metavar="auto", shown="one device",
                      help="'auto': spread a model too large for one GPU over all of them")
BlockSizeOpt = option("block_size", int | None, "--block-size", metavar="N", shown="the checkpoint's",
                      help="block-diffusion models: override the block size")
TrustOpt = option("trust_remote_code", bool, "--trust-remote-code", default=False, shown="off",
                  help="allow the checkpoint's own Python code")
AllowPickleOpt = option("allow_pickle", bool, "--allow-pickle", default=False, shown="safetensors only",
                        help="also load pickle weights (.bin/.pt), which can run code")
FamilyOpt = option("family", str | None, "--family", metavar="NAME", shown="detected from config.json",
                   help="force a checkpoint family (see `itdd models`)")
TokenizerOpt = option("tokenizer", str | None, "--tokenizer", metavar="MODEL", shown="the model's own",
                      help="load the tokenizer from elsewhere")
BaseOpt = option("base", str | None, "--base", metavar="MODEL", shown="the adapter's base_model_name_or_path",
                 help="LoRA adapter directories: the checkpoint they apply to")
MergeOpt = option("merge", bool, "--merge/--no-merge", default=True, shown="merge",
                  help="LoRA adapters: merge into the weights, or run beside them (slower; a check)")
RevisionOpt = option("revision", str | None, "--revision", metavar="REV", shown="latest", help="hub revision to pin")

# The input fields a record's parts are read from: --NAME-field, its default NAME, what it holds.
FIELD_HELP = {
    "text": "the text",
    "prompt": "the prompt (never scored)",
    "response": "the response",
    "chosen": "the preferred response",
    "rejected": "the other response",
    "choices": "the list of choices",
    "label": "the right choice (an index or its text)",
    "id": "the record id (without it: the line number)",
}
FIELD_OPTIONS = {name: option(f"{name}_field", str, f"--{name}-field", default=name, metavar="NAME",
                              help=f"field holding {what}") for name, what in FIELD_HELP.items()}  # fmt: skip
ChatTemplateOpt = option("chat_template", bool, "--chat-template", default=False, shown="off",
                         help="wrap the prompt in the tokenizer's chat template as a user turn")
KeepBoundaryOpt = option("keep_boundary", bool, "--keep-boundary", default=False, shown="off",
                         help="score the response exactly as split; by default the prompt's trailing whitespace "
                              "starts the response (lm-evaluation-harness's convention)")
LongOpt = option("long", Long, "--long", default=Long.error,
                 help="a text longer than the model's window: 'error' refuses it (exit 3), 'rolling' scores it in "
                      "windows")
ContextOpt = option("context", int, "--context", default=0, min=0, metavar="N",
                    help="--long rolling: earlier tokens each later window is conditioned on (never scored)")
PerTokenOpt = option("per_token", bool, "--per-token", default=False, shown="off",
                     help="add each scored token's text, its share of the NLL in nats and that share's SE "
                          "(token_strings, token_nll, token_nll_se; same draws, no extra passes); view with "
                          "'itdd show'")

InputFormatOpt = option("input_format", InputFormat, "--input-format", default=InputFormat.auto,
                        help=input_format_help())
LinesOpt = option("lines", bool, "--lines", default=False, shown="off",
                  help="plain text, one record per non-empty line")
DatasetOpt = option("dataset", str | None, "--dataset", metavar="NAME|PATH", shown="none",
                    help="Hugging Face dataset (hub name or local path) instead of INPUT")
DatasetConfigOpt = option("dataset_config", str | None, "--dataset-config", metavar="NAME", shown="none",
                          help="the dataset's configuration")
SplitOpt = option("split", str | None, "--split", metavar="NAME", shown="none", help="--dataset: the split to score")
LimitOpt = option("limit", int | None, "--limit", min=1, metavar="N", shown="all",
                  help="score only the first N records of the input (any format)")
KeepOpt = option("keep", list[str] | None, "--keep", metavar="FIELD", shown="none",
                 help="carry this input field into each output row (repeatable, or comma-separated)")
SkipInvalidOpt = option("skip_invalid", bool, "--skip-invalid", default=False, shown="stop at the first, exit 3",
                        help="report bad records on stderr and go on")

# The commands that read result files (their parameters are written out in cli/tools.py).
BaseArg = option("base_results", str, metavar="BASE", help="result file of the baseline (JSONL or CSV)")
NewArg = option("new_results", str, metavar="NEW", help="result file to compare with it")
MetricOpt = option("metric", str | None, "--metric", metavar="FIELD",
                   shown="nll_per_token; log_ratio for ratio files, correct for choice files", help="field to compare")
FailIfWorseOpt = option("fail_if_worse", bool, "--fail-if-worse", default=False, shown="off",
                        help="exit 4 when NEW is significantly worse")
ResultsArg = option("results", str, metavar="RESULTS", help="result file written with --per-token (JSONL or CSV)")
OtherResultsArg = option("other_results", str | None, metavar="OTHER", show_default=False,
                         help="a second such file on the same texts: show OTHER − RESULTS per token (red: more nats "
                              "in OTHER)")
HtmlOpt = option("html", str | None, "--html", metavar="OUT.html", shown="none",
                 help="write one self-contained, searchable HTML page of every row instead")
HtmlOverwriteOpt = option("html_overwrite", bool, "--overwrite", default=False, shown="off",
                          help="replace an existing --html page")
ShowLimitOpt = option("show_limit", int | None, "--limit", min=1, metavar="N",
                      shown="20 in the terminal, every row in --html",
                      help="show at most the first N rows (after --id)")
ShowIdOpt = option("ids", list[str] | None, "--id", metavar="ID", shown="every row",
                   help="show only the row with this id (repeatable)")
WorstOpt = option("worst", int, "--worst", default=5, min=0, metavar="K",
                  help="list the K tokens with the most nats under each row")


def _show_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


VersionOpt = option("version", bool, "--version", default=False, callback=_show_version, is_eager=True,
                    help="print the version and exit")
