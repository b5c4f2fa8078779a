"""Several checkpoints over one input (`-m A -m B …`, or a directory of `checkpoint-*` folders).

Every record is scored under every checkpoint with the same settings, so a record's draws are the
same for checkpoints that frame it into the same token ids (noise is seeded by the ids): their
per-record differences are coupled and have small standard errors. Checkpoints are loaded one at
a time and released before the next; the input is streamed once per checkpoint. Rows carry
`model`; the closing table has a line per checkpoint with the paired difference to the first.
"""

from __future__ import annotations

import gc
import os
import stat
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from itdd_cli.errors import UsageError
from itdd_cli.io.records import Fields, flag_duplicate_ids
from itdd_cli.io.sources import Source, read_source
from itdd_cli.results.checkpoints import step_of
from itdd_cli.results.rows import Command
from itdd_cli.results.study_lines import CheckpointLine, Study
from itdd_cli.results.summary import Summary, check_gates

if TYPE_CHECKING:
    from itdd_cli.core.settings import Settings
    from itdd_cli.models.base import ScoringModel
    from itdd_cli.results.destination import Output, Policy


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
    from itdd_cli.results.destination import prepare_output
    from itdd_cli.scoring.runner import Lossy, Skipped, score
    from itdd_cli.views.reporting import make_sink, notice

    if settings.guidance is not None:  # its table and plot are of log-likelihoods, which guided scores are not
        raise UsageError("--cfg scores one checkpoint at a time: give -m once per run")
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
