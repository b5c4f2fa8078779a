"""Every CLI option, declared once and reused by the commands that take it."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from itdd_cli.estimators import Estimator
from itdd_cli.reporting import Format


class Dtype(StrEnum):
    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


InputArg = Annotated[
    str | None,
    typer.Argument(metavar="INPUT", help="JSONL file to score; omit or '-' for standard input", show_default=False),
]
ModelOpt = Annotated[
    str | None,
    typer.Option("--model", "-m", envvar="ITDD_MODEL", help="hub id or local checkpoint directory", show_default=False),
]
OutputOpt = Annotated[
    str | None, typer.Option("--output", "-o", help="write results here (.jsonl or .csv)", show_default=False)
]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="replace an existing --output file")]
FormatOpt = Annotated[
    Format, typer.Option("--format", help="auto: table on a terminal, JSONL in a pipe, or by --output extension")
]
SamplesOpt = Annotated[
    int, typer.Option("--samples", "-n", min=2, help="Monte Carlo draws per record (per pair for ratio)")
]
EstimatorOpt = Annotated[Estimator, typer.Option("--estimator", help="how masks are drawn (see README)")]
SeedOpt = Annotated[int, typer.Option("--seed", help="base seed; draws depend only on it and the token ids")]
BatchSizeOpt = Annotated[
    str, typer.Option("--batch-size", help="forward rows per batch, or 'auto' to fill --max-tokens")
]
MaxTokensOpt = Annotated[
    int | None,
    typer.Option(
        "--max-tokens",
        min=1,
        show_default=False,
        help="padded tokens per forward batch when --batch-size is auto [default: 2048 on CPU, 16384 on GPU]",
    ),
]
DtypeOpt = Annotated[Dtype, typer.Option("--dtype", help="auto: bfloat16 on GPU, float32 on CPU")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N")]
TrustOpt = Annotated[bool, typer.Option("--trust-remote-code", help="allow the checkpoint's own Python code")]
FamilyOpt = Annotated[
    str | None, typer.Option("--family", help="force a checkpoint family (see `itdd models`)", show_default=False)
]
TokenizerOpt = Annotated[
    str | None, typer.Option("--tokenizer", help="load the tokenizer from elsewhere", show_default=False)
]
RevisionOpt = Annotated[str | None, typer.Option("--revision", help="hub revision to pin", show_default=False)]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bar and no summary on standard error")]
IndependentOpt = Annotated[
    bool, typer.Option("--independent", help="draw each side's masks separately instead of coupling them")
]
TextFieldOpt = Annotated[str, typer.Option("--text-field", help="field holding the text")]
PromptFieldOpt = Annotated[str, typer.Option("--prompt-field", help="field holding the prompt (never scored)")]
ResponseFieldOpt = Annotated[str, typer.Option("--response-field", help="field holding the response")]
ChosenFieldOpt = Annotated[str, typer.Option("--chosen-field", help="field holding the preferred response")]
RejectedFieldOpt = Annotated[str, typer.Option("--rejected-field", help="field holding the other response")]
IdFieldOpt = Annotated[str, typer.Option("--id-field", help="field holding the record id (default: line number)")]
ChatTemplateOpt = Annotated[
    bool, typer.Option("--chat-template", help="wrap the prompt in the tokenizer's chat template as a user turn")
]
DeviceMapOpt = Annotated[
    str | None,
    typer.Option(
        "--device-map", help="'auto': spread a model too large for one GPU over all of them", show_default=False
    ),
]
BlockSizeOpt = Annotated[
    int | None,
    typer.Option("--block-size", help="block-diffusion models: override the block size", show_default=False),
]
SkipInvalidOpt = Annotated[
    bool, typer.Option("--skip-invalid", help="report bad records on stderr and go on, instead of stopping (exit 3)")
]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="continue a partial --output file")]
SummaryOpt = Annotated[
    str | None, typer.Option("--summary", help="write a JSON summary of the run here (for CI)", show_default=False)
]
FailAboveOpt = Annotated[
    list[str] | None,
    typer.Option("--fail-above", help="METRIC=VALUE: exit 4 when the metric is above VALUE", show_default=False),
]
FailBelowOpt = Annotated[
    list[str] | None,
    typer.Option("--fail-below", help="METRIC=VALUE: exit 4 when the metric is below VALUE", show_default=False),
]
AllowPickleOpt = Annotated[
    bool,
    typer.Option("--allow-pickle", help="also load pickle weights (.bin/.pt), which can run code"),
]
BaseArg = Annotated[str, typer.Argument(metavar="BASE", help="result file of the baseline (JSONL or CSV)")]
NewArg = Annotated[str, typer.Argument(metavar="NEW", help="result file to compare with it")]
MetricOpt = Annotated[
    str | None,
    typer.Option(
        "--metric", help="field to compare [default: nll_per_token, or log_ratio for ratio files]", show_default=False
    ),
]
FailIfWorseOpt = Annotated[bool, typer.Option("--fail-if-worse", help="exit 4 when NEW is significantly worse")]
