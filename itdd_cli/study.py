"""Several checkpoints over one input (`-m A -m B …`, or a directory of `checkpoint-*` folders).

Every record is scored under every checkpoint with the same settings, so a record's draws are the
same for checkpoints that frame it into the same token ids (noise is seeded by the ids): their
per-record differences are coupled and have small standard errors. Checkpoints are loaded one at
a time and released before the next; the input is streamed once per checkpoint. Rows carry
`model`; the closing table has a line per checkpoint with the paired difference to the first.
"""

from __future__ import annotations

import gc
import math
import os
import stat
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from itdd_cli.checkpoints import RatioTally, step_of
from itdd_cli.errors import UsageError
from itdd_cli.io.sources import Source, read_source
from itdd_cli.records import Fields, flag_duplicate_ids
from itdd_cli.results import row_key
from itdd_cli.rows import Command
from itdd_cli.settings import LN2
from itdd_cli.summary import Summary, check_gates

if TYPE_CHECKING:
    from itdd_cli.models.base import ScoringModel
    from itdd_cli.session import Output, Policy
    from itdd_cli.settings import Settings


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


def tokenizer_key(model: ScoringModel) -> tuple[Any, ...]:
    """What decides whether two checkpoints draw the same masks: their token ids and framing."""
    vocab = model.tokenizer.get_vocab() if hasattr(model.tokenizer, "get_vocab") else None
    return (tuple(sorted(vocab.items())) if vocab else None, model.info.framing)


def _rereadable(path: str | None) -> bool:
    try:
        return path not in (None, "-") and stat.S_ISREG(os.stat(str(path)).st_mode)
    except OSError:
        return True  # a missing file is reported as such by the input check


def run_study(command: Command, source: Source, names: list[str], load: Callable[[str], ScoringModel],
              settings: Settings, fields: Fields, output: Output, policy: Policy) -> Study:  # fmt: skip
    """Score the input under each checkpoint in turn; rows go to one sink, in checkpoint order."""
    from itdd_cli.io.formats import Format, resolve_format
    from itdd_cli.reporting import make_sink, notice
    from itdd_cli.runner import Lossy, Skipped, score
    from itdd_cli.session import prepare_output

    if source.dataset is None and not _rereadable(source.path):
        raise UsageError("several checkpoints read the input once each: name a regular file, not standard input, "
                         "a pipe or <(…)")  # fmt: skip
    if output.resume:
        raise UsageError("--resume continues a run of one checkpoint; score several into a new --output")
    fmt = resolve_format(output.fmt, output.path, sys.stdout)
    study = Study()
    first_key: tuple[Any, ...] | None = None
    prepared = output if output.target else prepare_output(output, source.path)
    assert prepared.target is not None
    with ExitStack() as stack:
        if not output.target:  # prepared here: released here (the lock, an uncommitted temporary file)
            stack.callback(prepared.target.close)
        stream = prepared.target.open()
        # a table shows the checkpoints' summary table; the rows themselves go to -o FILE
        sink = None if fmt is Format.table else make_sink(fmt, stream, command)
        try:
            for name in names:
                model = load(name)
                key = tokenizer_key(model)
                first_key = key if first_key is None else first_key
                line = CheckpointLine(name, step_of(name), Summary(command), coupled=key == first_key)
                study.lines.append(line)
                with ExitStack() as inputs:
                    objects = flag_duplicate_ids(read_source(source, fields.text, inputs), fields.id, source.noun)
                    for row in score(command, objects, model, settings, fields, policy.skip_invalid):
                        if isinstance(row, Skipped):
                            line.summary.skipped += 1
                            notice(f"{name}: skipped {source.unit()} {row.line}: {row.message}")
                            continue
                        if isinstance(row, Lossy):
                            line.summary.lossy += 1
                            notice(f"{name}: {source.unit()} {row.line}: {row.message} — --strict refuses such records")
                            row = row.row
                        if sink is not None:
                            sink.write({"model": name} | row)
                        line.summary.add(row)
                        study.add(line, row)
                line.summary.finished = time.perf_counter()
                del model  # one checkpoint in memory at a time
                release_memory()
            prepared.target.commit()  # every checkpoint scored: the rows become the user's
        finally:
            if sink is not None:
                sink.close()
    return study


def check_study_gates(study: Study, policy: Policy) -> None:
    """After the summary file is written: a failed gate must not cost the CI its artefact."""
    for line in study.lines:
        check_gates(policy.gates, line.summary)


def release_memory() -> None:
    """Free a released checkpoint's memory before the next one loads."""
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


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

    from itdd_cli import __version__

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
