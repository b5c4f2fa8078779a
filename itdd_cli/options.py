"""Every CLI option, declared once and reused by the commands that take it.

Each option shows its default in the help (`[default: …]`, written out where it is not a plain
value) and a metavar saying what it takes; bad values are reported in itdd's words by `usage.py`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from itdd_cli import __version__, checks
from itdd_cli.bundled import DEFAULT as DEFAULT_MODEL
from itdd_cli.estimators import Estimator
from itdd_cli.io.formats import Format, InputFormat
from itdd_cli.windows import Long


class Dtype(StrEnum):
    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


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


# When to pick which estimator (shown by --estimator's help, for the members that exist).
ESTIMATOR_ADVICE = {
    "control-variate": "lowest variance on text (a short pilot measures each token's loss)",
    "chain-rule": "best on models whose conditionals agree with each other, such as dna8",
    "stratified": "low variance, no pilot",
    "time-free": "the paper's, noisier; for comparison",
    "time-integral": "the paper's masking-rate integral, the noisiest; for comparison",
    "exact": "every mask once, no error bar, at most 16 scored tokens; to check the others",
}


def _estimator_help() -> str:
    advice = "; ".join(f"{member.value}: {ESTIMATOR_ADVICE.get(member.value, '')}" for member in Estimator)
    return f"how masks are drawn; the default suits almost every use — {advice}"


InputArg = Annotated[
    str | None,
    typer.Argument(
        metavar="INPUT",
        help=_shown("file to score (JSONL unless --input-format or its extension says otherwise), or '-'",
                    "standard input"),
        show_default=False,
    ),
]  # fmt: skip
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        envvar="ITDD_MODEL",
        metavar="MODEL",
        show_default=False,
        help=_shown(
            "hub id (e.g. GSAI-ML/LLaDA-8B-Base), local checkpoint directory, or a bundled model: "
            "demo (tiny English, for trying itdd out) or dna8 (synthetic DNA with known answers)",
            f"$ITDD_MODEL, else the bundled {DEFAULT_MODEL}",
        ),
    ),
]
OutputOpt = Annotated[
    str | None,
    typer.Option(
        "--output", "-o", metavar="PATH", show_default=False,
        help=_shown("write results here (.csv: CSV, otherwise JSONL)", "standard output"),
    ),
]  # fmt: skip
HtmlOverwriteOpt = Annotated[
    bool, typer.Option("--overwrite", help=_shown("replace an existing --html page", "off"), show_default=False)
]
OverwriteOpt = Annotated[
    bool, typer.Option("--overwrite", help=_shown("replace an existing --output file", "off"), show_default=False)
]
FormatOpt = Annotated[
    Format,
    typer.Option("--format", help="auto: by --output's extension, else a table on a terminal and JSONL in a pipe"),
]
SamplesOpt = Annotated[
    int,
    typer.Option(
        "--samples",
        "-n",
        min=checks.MIN_SAMPLES,
        metavar="N",
        help="forward passes per record (per side for ratio), the control variate's pilot included",
    ),
]
EstimatorOpt = Annotated[Estimator, typer.Option("--estimator", help=_estimator_help())]
SeedOpt = Annotated[
    int,
    typer.Option(
        "--seed", metavar="INT", callback=_seed, parser=_seed_text,
        help="base seed, -2**127 to 2**127 - 1; a record's draws depend only on it and its token ids",
    ),
]  # fmt: skip
TargetSeOpt = Annotated[
    float | None,
    typer.Option(
        "--target-se",
        min=0.0,
        show_default=False,
        metavar="NATS",
        help=_shown("draw more rounds until each record's SE (of nll, or of log_ratio) is at most this; a precision "
                    "goal, not a coverage guarantee", "off"),
    ),
]
MaxSamplesOpt = Annotated[
    int | None,
    typer.Option(
        "--max-samples",
        min=checks.MIN_SAMPLES,
        show_default=False,
        metavar="N",
        help="cap on passes per record with --target-se / --until-decided [default: 8 × --samples]",
    ),
]
UntilDecidedOpt = Annotated[
    float | None,
    typer.Option(
        "--until-decided",
        callback=_decision_level,
        show_default=False,
        metavar="LEVEL",
        help=_shown(
            "draw rounds (-n, then doubling) until the pick is decided by an anytime-valid rule with error rate "
            "α ≤ LEVEL (0.01), or a z ≥ 1 meaning α = P(|N(0,1)| > z) (3: 0.0027); up to --max-samples", "off"
        ),
    ),
]
BatchSizeOpt = Annotated[
    str,
    typer.Option("--batch-size", metavar="ROWS|auto", help="forward rows per batch, or 'auto' to fill --max-tokens"),
]
MaxTokensOpt = Annotated[
    int | None,
    typer.Option(
        "--max-tokens", min=1, metavar="TOKENS", show_default=False,
        help=_shown("padded tokens per forward batch when --batch-size is auto", "2048 on CPU, 16384 on GPU"),
    ),
]  # fmt: skip
DtypeOpt = Annotated[Dtype, typer.Option("--dtype", help="auto: bfloat16 on GPU, float32 on CPU")]
DeviceOpt = Annotated[
    str, typer.Option("--device", metavar="DEVICE", help="auto (a GPU if there is one), cpu, cuda, cuda:N, mps or xpu")
]
TrustOpt = Annotated[
    bool,
    typer.Option(
        "--trust-remote-code", show_default=False, help=_shown("allow the checkpoint's own Python code", "off")
    ),
]
FamilyOpt = Annotated[
    str | None,
    typer.Option(
        "--family", metavar="NAME", show_default=False,
        help=_shown("force a checkpoint family (see `itdd models`)", "detected from config.json"),
    ),
]  # fmt: skip
TokenizerOpt = Annotated[
    str | None,
    typer.Option(
        "--tokenizer", metavar="MODEL", show_default=False,
        help=_shown("load the tokenizer from elsewhere", "the model's own"),
    ),
]  # fmt: skip
RevisionOpt = Annotated[
    str | None,
    typer.Option("--revision", metavar="REV", show_default=False, help=_shown("hub revision to pin", "latest")),
]
QuietOpt = Annotated[
    bool,
    typer.Option(
        "--quiet", "-q", show_default=False, help=_shown("no progress bar and no summary on standard error", "off")
    ),
]
IndependentOpt = Annotated[
    bool,
    typer.Option(
        "--independent", show_default=False,
        help=_shown("draw each side's (choice's) masks separately instead of coupling them", "coupled"),
    ),
]  # fmt: skip
TextFieldOpt = Annotated[str, typer.Option("--text-field", metavar="NAME", help="field holding the text")]
PromptFieldOpt = Annotated[
    str, typer.Option("--prompt-field", metavar="NAME", help="field holding the prompt (never scored)")
]
ResponseFieldOpt = Annotated[str, typer.Option("--response-field", metavar="NAME", help="field holding the response")]
ChosenFieldOpt = Annotated[
    str, typer.Option("--chosen-field", metavar="NAME", help="field holding the preferred response")
]
RejectedFieldOpt = Annotated[
    str, typer.Option("--rejected-field", metavar="NAME", help="field holding the other response")
]
ChoicesFieldOpt = Annotated[
    str, typer.Option("--choices-field", metavar="NAME", help="field holding the list of choices")
]
LabelFieldOpt = Annotated[
    str, typer.Option("--label-field", metavar="NAME", help="field holding the right choice (an index or its text)")
]
IdFieldOpt = Annotated[
    str,
    typer.Option("--id-field", metavar="NAME", help="field holding the record id (without it: the line number)"),
]
ChatTemplateOpt = Annotated[
    bool,
    typer.Option(
        "--chat-template", show_default=False,
        help=_shown("wrap the prompt in the tokenizer's chat template as a user turn", "off"),
    ),
]  # fmt: skip
KeepBoundaryOpt = Annotated[
    bool,
    typer.Option(
        "--keep-boundary", show_default=False,
        help=_shown("score the response exactly as split; by default the prompt's trailing whitespace starts the "
                    "response (lm-evaluation-harness's convention)", "off"),
    ),
]  # fmt: skip
DeviceMapOpt = Annotated[
    str | None,
    typer.Option(
        "--device-map", metavar="auto", show_default=False,
        help=_shown("'auto': spread a model too large for one GPU over all of them", "one device"),
    ),
]  # fmt: skip
BlockSizeOpt = Annotated[
    int | None,
    typer.Option("--block-size", metavar="N", help=_shown("block-diffusion models: override the block size",
                                                        "the checkpoint's"), show_default=False),
]
SkipInvalidOpt = Annotated[
    bool,
    typer.Option(
        "--skip-invalid", show_default=False,
        help=_shown("report bad records on stderr and go on", "stop at the first, exit 3"),
    ),
]  # fmt: skip
ResumeOpt = Annotated[
    bool, typer.Option("--resume", show_default=False, help=_shown("continue a partial --output file", "off"))
]
StrictOpt = Annotated[
    bool,
    typer.Option(
        "--strict", show_default=False,
        help=_shown("refuse (exit 3) a record whose text the tokenizer drops or maps to unknown tokens",
                    "warn and score it"),
    ),
]  # fmt: skip
SummaryOpt = Annotated[
    str | None,
    typer.Option(
        "--summary", metavar="PATH", show_default=False,
        help=_shown("write a JSON summary of the run here (for CI)", "none"),
    ),
]  # fmt: skip
FailAboveOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--fail-above", metavar="METRIC=VALUE", show_default=False,
        help=_shown("exit 4 when the summary's METRIC is above VALUE (repeatable)", "none"),
    ),
]  # fmt: skip
FailBelowOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--fail-below", metavar="METRIC=VALUE", show_default=False,
        help=_shown("exit 4 when the summary's METRIC is below VALUE (repeatable)", "none"),
    ),
]  # fmt: skip
AllowPickleOpt = Annotated[
    bool,
    typer.Option(
        "--allow-pickle", show_default=False,
        help=_shown("also load pickle weights (.bin/.pt), which can run code", "safetensors only"),
    ),
]  # fmt: skip
BaseArg = Annotated[str, typer.Argument(metavar="BASE", help="result file of the baseline (JSONL or CSV)")]
NewArg = Annotated[str, typer.Argument(metavar="NEW", help="result file to compare with it")]
MetricOpt = Annotated[
    str | None,
    typer.Option(
        "--metric", metavar="FIELD", show_default=False,
        help=_shown("field to compare", "nll_per_token; log_ratio for ratio files, correct for choice files"),
    ),
]  # fmt: skip
FailIfWorseOpt = Annotated[
    bool,
    typer.Option("--fail-if-worse", show_default=False, help=_shown("exit 4 when NEW is significantly worse", "off")),
]


def _show_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


VersionOpt = Annotated[
    bool, typer.Option("--version", callback=_show_version, is_eager=True, help="print the version and exit")
]
LongOpt = Annotated[
    Long,
    typer.Option(
        "--long",
        help="a text longer than the model's window: 'error' refuses it (exit 3), 'rolling' scores it in windows",
    ),
]
ContextOpt = Annotated[
    int,
    typer.Option(
        "--context", min=0, metavar="N",
        help="--long rolling: earlier tokens each later window is conditioned on (never scored)",
    ),
]  # fmt: skip
InputFormatOpt = Annotated[
    InputFormat,
    typer.Option(
        "--input-format",
        help="auto: by extension (.csv, .tsv, .parquet, .txt = one document), else JSONL; "
        "lines: one record per non-empty line; text: the whole file one record",
    ),
]
LinesOpt = Annotated[
    bool,
    typer.Option("--lines", show_default=False, help=_shown("plain text, one record per non-empty line", "off")),
]
DatasetOpt = Annotated[
    str | None,
    typer.Option(
        "--dataset", metavar="NAME|PATH", show_default=False,
        help=_shown("Hugging Face dataset (hub name or local path) instead of INPUT", "none"),
    ),
]  # fmt: skip
DatasetConfigOpt = Annotated[
    str | None,
    typer.Option("--dataset-config", metavar="NAME", show_default=False,
                 help=_shown("the dataset's configuration", "none")),
]  # fmt: skip
SplitOpt = Annotated[
    str | None,
    typer.Option("--split", metavar="NAME", show_default=False, help=_shown("--dataset: the split to score", "none")),
]
LimitOpt = Annotated[
    int | None,
    typer.Option("--limit", min=1, metavar="N", show_default=False,
                 help=_shown("score only the first N records of the input (any format)", "all")),
]  # fmt: skip
KeepOpt = Annotated[
    list[str] | None,
    typer.Option("--keep", metavar="FIELD", show_default=False,
                 help=_shown("carry this input field into each output row (repeatable, or comma-separated)", "none")),
]  # fmt: skip
ModelsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--model", "-m", metavar="MODEL", show_default=False,
        help=_shown(
            "hub id, local checkpoint directory, bundled model (demo, dna8), or a directory of checkpoint-* "
            "folders; repeat to score every record under each checkpoint",
            f"$ITDD_MODEL, else the bundled {DEFAULT_MODEL}",
        ),
    ),
]  # fmt: skip
PlotOpt = Annotated[
    str | None,
    typer.Option("--plot", metavar="PATH", show_default=False,
                 help=_shown("several checkpoints: draw bits per byte by checkpoint to this .png or .svg", "none")),
]  # fmt: skip
PerTokenOpt = Annotated[
    bool,
    typer.Option(
        "--per-token", show_default=False,
        help=_shown("add each scored token's text, its share of the NLL in nats and that share's SE "
                    "(token_strings, token_nll, token_nll_se; same draws, no extra passes); view with 'itdd show'",
                    "off"),
    ),
]  # fmt: skip
ResultsArg = Annotated[
    str, typer.Argument(metavar="RESULTS", help="result file written with --per-token (JSONL or CSV)")
]
OtherResultsArg = Annotated[
    str | None,
    typer.Argument(metavar="OTHER", show_default=False,
                   help="a second such file on the same texts: show OTHER − RESULTS per token (red: more nats in "
                        "OTHER)"),
]  # fmt: skip
HtmlOpt = Annotated[
    str | None,
    typer.Option("--html", metavar="OUT.html", show_default=False,
                 help=_shown("write one self-contained, searchable HTML page of every row instead", "none")),
]  # fmt: skip
ShowLimitOpt = Annotated[
    int | None,
    typer.Option("--limit", min=1, metavar="N", show_default=False,
                 help=_shown("show at most the first N rows (after --id)", "20 in the terminal, every row in --html")),
]  # fmt: skip
ShowIdOpt = Annotated[
    list[str] | None,
    typer.Option("--id", metavar="ID", show_default=False,
                 help=_shown("show only the row with this id (repeatable)", "every row")),
]  # fmt: skip
WorstOpt = Annotated[
    int, typer.Option("--worst", min=0, metavar="K", help="list the K tokens with the most nats under each row")
]
