"""Several checkpoints' figures over one input: per checkpoint a line of corpus figures and its
paired difference to the first checkpoint (records matched by id), and the study's --summary JSON.
Torch-free: the views draw these lines, `run.study` fills them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from itdd_cli.core.settings import LN2
from itdd_cli.results.checkpoints import RatioTally
from itdd_cli.results.reader import row_key
from itdd_cli.results.rows import Command
from itdd_cli.results.summary import Summary

if TYPE_CHECKING:
    from itdd_cli.core.settings import Settings


@dataclass
class CheckpointLine:
    """One checkpoint's corpus figures and its paired difference to the first checkpoint."""

    name: str
    step: int | None
    summary: Summary
    per_token: RatioTally = field(default_factory=RatioTally)  # nll over tokens
    per_byte: RatioTally = field(default_factory=RatioTally)  # nll over bytes
    delta_token: RatioTally = field(default_factory=RatioTally)  # (nll − first's nll) over tokens
    delta_byte: RatioTally = field(default_factory=RatioTally)  # (nll − first's nll) over bytes
    coupled: bool = True  # same tokenizer and framing as the first: shared draws
    same_tokens: bool = True  # every record has the first checkpoint's token count
    unpaired: int = 0  # records scored here but not under the first checkpoint (skipped there)


@dataclass
class Study:
    lines: list[CheckpointLine] = field(default_factory=list)
    first_nll: dict[Any, float] = field(default_factory=dict)  # per record of the first checkpoint
    first_tokens: dict[Any, int] = field(default_factory=dict)

    def add(self, line: CheckpointLine, row: dict[str, Any]) -> None:
        line.per_token.add(row["nll"], row["tokens"])
        line.per_byte.add(row["nll"], row["bytes"])
        key = row_key(row)
        if not self.lines or line is self.lines[0]:
            self.first_nll[key] = row["nll"]
            self.first_tokens[key] = row["tokens"]
            line.delta_token.add(0.0, row["tokens"])
            line.delta_byte.add(0.0, row["bytes"])
            return
        if key not in self.first_nll:
            line.unpaired += 1
            return
        difference = row["nll"] - self.first_nll[key]
        line.same_tokens &= row["tokens"] == self.first_tokens[key]
        line.delta_token.add(difference, row["tokens"])
        line.delta_byte.add(difference, row["bytes"])


def line_numbers(line: CheckpointLine) -> dict[str, float]:
    """The figures of one checkpoint's line in the table (and the plot)."""
    return {
        "nll_per_token": line.per_token.value,
        "nll_per_token_se": line.per_token.se,
        "bits_per_byte": line.per_byte.value / LN2,
        "bits_per_byte_se": line.per_byte.se / LN2,
        "perplexity": math.exp(min(line.per_token.value, 700)),
        "delta_nll_per_token": line.delta_token.value if line.same_tokens else math.nan,
        "delta_nll_per_token_se": line.delta_token.se if line.same_tokens else math.nan,
        "delta_bits_per_byte": line.delta_byte.value / LN2,
        "delta_bits_per_byte_se": line.delta_byte.se / LN2,
    }


def write_study_json(study: Study, command: Command, settings: Settings, path: str) -> None:
    """--summary of a study: per checkpoint, the run's metrics and the table's figures."""
    import json
    from pathlib import Path

    from itdd_cli.version import __version__

    def finite(value: float) -> float | None:
        return value if math.isfinite(value) else None

    document = {
        "tool": "itdd",
        "version": __version__,
        "command": command.value,
        "estimator": settings.estimator.value,
        "samples": settings.samples,
        "seed": settings.seed,
        "checkpoints": [
            {"model": line.name, "step": line.step, "coupled": line.coupled, "unpaired": line.unpaired}
            | {key: finite(value) for key, value in (line.summary.metrics() | line_numbers(line)).items()}
            for line in study.lines
        ],
    }
    Path(path).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
