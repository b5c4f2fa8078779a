"""One scoring run from the command line: input → (shards) → runner → sink, with resume,
skipping, the summary and quality gates. Commands call `run_scoring` and nothing else.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from itdd_cli.engine import BatchProgress
from itdd_cli.errors import InputError, UsageError
from itdd_cli.io.reader import open_input, read_objects
from itdd_cli.models.base import ScoringModel
from itdd_cli.parallel import Shard, close_shard, current_shard, score_sharded
from itdd_cli.records import Fields, flag_duplicate_ids
from itdd_cli.reporting import (
    Format,
    console_for,
    make_sink,
    notice,
    print_summary,
    progress_bar,
    resolve_format,
    stderr_console,
)
from itdd_cli.resume import finished_rows, skip_finished
from itdd_cli.rows import SPECS, Command
from itdd_cli.runner import Lossy, Skipped, score, token_counts
from itdd_cli.settings import Settings
from itdd_cli.summary import Gate, Summary, check_gates, summary_json


@dataclass(frozen=True)
class Output:
    path: str | None = None
    fmt: Format = Format.auto
    overwrite: bool = False
    resume: bool = False
    summary_path: str | None = None
    quiet: bool = False


@dataclass(frozen=True)
class Policy:
    skip_invalid: bool = False
    gates: list[Gate] = field(default_factory=list)
    revision: str | None = None


def _check(output: Output) -> None:
    if output.resume and output.path in (None, "-"):
        raise UsageError("--resume needs -o/--output: a file to continue")
    if output.resume and output.overwrite:
        raise UsageError("--resume and --overwrite contradict each other; choose one")


def _open_output(output: Output, stack: ExitStack) -> TextIO:
    if output.path is None or output.path == "-":
        return sys.stdout
    path = Path(output.path)
    if path.exists() and not (output.overwrite or output.resume):
        raise UsageError(f"{output.path} exists; pass --overwrite to replace it or --resume to continue it")
    try:
        return stack.enter_context(path.open("a" if output.resume else "w", encoding="utf-8", newline=""))
    except OSError as error:
        raise UsageError(f"cannot write {output.path}: {error.strerror}") from error


def run_scoring(command: Command, input_path: str | None, model: ScoringModel, settings: Settings, fields: Fields,
                output: Output, policy: Policy) -> None:  # fmt: skip
    """Open (format, resume), stream (input → rows → sink), finish (summary, gates)."""
    _check(output)
    shard = current_shard()
    try:
        run = _Run(command, model, settings, fields, output, policy, shard)
        with ExitStack() as stack:
            run.stream(input_path, stack)
        run.finish()
    finally:
        close_shard(shard)


class _Run:
    def __init__(self, command: Command, model: ScoringModel, settings: Settings, fields: Fields, output: Output,
                 policy: Policy, shard: Shard) -> None:  # fmt: skip
        self.command, self.model, self.settings, self.fields = command, model, settings, fields
        self.output, self.policy, self.shard = output, policy, shard
        self.format = resolve_format(output.fmt, output.path, sys.stdout)
        if output.resume and self.format is Format.table:
            raise UsageError("--resume continues a JSONL or CSV file, not a table")
        self.done = (
            finished_rows(Path(str(output.path)), self.format is Format.csv, shard.is_main) if output.resume else []
        )
        self.summary = Summary(command)
        for row in self.done:
            self.summary.add(row)
        self.stream_out: TextIO = sys.stdout

    def _objects(self, input_path: str | None, stack: ExitStack) -> Iterator[tuple[int, dict[str, Any] | InputError]]:
        source = open_input(input_path)
        if source is not sys.stdin.buffer:
            stack.callback(source.close)
        objects = flag_duplicate_ids(read_objects(source), self.fields.id)
        if not self.done:
            return objects
        spec = SPECS[self.command]
        return skip_finished(objects, self.done, lambda obj, line: spec.parse(obj, line, self.fields),
                             lambda record: token_counts(self.command, self.model, record),
                             str(self.output.path))  # fmt: skip

    def _rows(self, objects: Iterator[tuple[int, dict[str, Any] | InputError]],
              on_batch: Callable[[BatchProgress], None]) -> Iterator[dict[str, Any] | Skipped]:  # fmt: skip
        def score_some(chunk: Iterable[tuple[int, dict[str, Any] | InputError]]) -> Iterator[dict[str, Any] | Skipped]:
            return score(self.command, chunk, self.model, self.settings, self.fields, self.policy.skip_invalid,
                         on_batch)  # fmt: skip

        return score_sharded(objects, score_some, self.shard) if self.shard.world > 1 else score_some(objects)

    def stream(self, input_path: str | None, stack: ExitStack) -> None:
        """Every row to the sink as it finishes; what finished stays written on any failure."""
        if self.shard.is_main:
            self.stream_out = _open_output(self.output, stack)
        else:
            self.stream_out = stack.enter_context(open(os.devnull, "w"))
        sink = make_sink(self.format, self.stream_out, self.command, header=not self.done)
        show_progress = self.shard.is_main and not self.output.quiet and sys.stderr.isatty()
        try:
            with progress_bar(input_path, enabled=show_progress, finished=len(self.done)) as bar:
                for row in self._rows(self._objects(input_path, stack), bar.batch):
                    if isinstance(row, Skipped):
                        self.summary.skipped += 1
                        notice(f"skipped line {row.line}: {row.message}")
                        bar.record(self.summary)
                        continue
                    if isinstance(row, Lossy):
                        self.summary.lossy += 1
                        notice(f"line {row.line}: {row.message} — --strict refuses such records")
                        row = row.row
                    sink.write(row)
                    self.summary.add(row)
                    bar.record(self.summary)
        finally:
            sink.close()
        self.summary.finished = time.perf_counter()
        if not self.shard.is_main:
            return
        if self.format is Format.table:
            print_summary(console_for(self.stream_out), self.summary, self.model.info, self.settings)
        elif not self.output.quiet:
            print_summary(stderr_console(), self.summary, self.model.info, self.settings)

    def finish(self) -> None:
        """The JSON summary (main process), then the quality gates."""
        if self.shard.is_main and self.output.summary_path:
            document = summary_json(self.summary, self.model.info, self.settings, self.policy.revision)
            Path(self.output.summary_path).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        check_gates(self.policy.gates, self.summary)
