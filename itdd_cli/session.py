"""One scoring run from the command line: input → (shards) → runner → sink, with resume,
skipping, the summary and quality gates. Commands call `run_scoring` and nothing else.
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from itdd_cli.errors import UsageError
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
from itdd_cli.runner import PARSERS, Command, Settings, Skipped, score, token_counts
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
    _check(output)
    shard = current_shard()
    try:
        _run(command, input_path, model, settings, fields, output, policy, shard)
    finally:
        close_shard(shard)


def _run(command: Command, input_path: str | None, model: ScoringModel, settings: Settings, fields: Fields,
         output: Output, policy: Policy, shard: Shard) -> None:  # fmt: skip
    resolved = resolve_format(output.fmt, output.path, sys.stdout)
    if output.resume and resolved is Format.table:
        raise UsageError("--resume continues a JSONL or CSV file, not a table")
    done = finished_rows(Path(output.path), resolved is Format.csv, shard.is_main) if output.resume else []
    summary = Summary(command)
    for row in done:
        summary.add(row)
    with ExitStack() as stack:
        stream = _open_output(output, stack) if shard.is_main else stack.enter_context(open(os.devnull, "w"))
        source = open_input(input_path)
        if source is not sys.stdin.buffer:
            stack.callback(source.close)
        sink = make_sink(resolved, stream, command, header=not done)
        objects = flag_duplicate_ids(read_objects(source), fields.id)
        if done:
            parse = PARSERS[command]
            objects = skip_finished(objects, done, lambda obj, line: parse(obj, line, fields),
                                    lambda record: token_counts(model, record, command), str(output.path))  # fmt: skip
        if shard.world > 1:
            rows = score_sharded(
                objects, lambda chunk: score(command, chunk, model, settings, fields, policy.skip_invalid), shard
            )
        else:
            rows = score(command, objects, model, settings, fields, policy.skip_invalid)
        show_progress = shard.is_main and not output.quiet and sys.stderr.isatty()
        try:
            with progress_bar(input_path, enabled=show_progress) as advance:
                for row in rows:
                    if isinstance(row, Skipped):
                        summary.skipped += 1
                        notice(f"skipped line {row.line}: {row.message}")
                        continue
                    sink.write(row)
                    summary.add(row)
                    advance(summary)
        finally:
            sink.close()  # what finished is written even when a later record fails or Ctrl-C arrives
        summary.finished = time.perf_counter()
        if not shard.is_main:
            return
        if resolved is Format.table:
            print_summary(console_for(stream), summary, model.info, settings)
        elif not output.quiet:
            print_summary(stderr_console(), summary, model.info, settings)
    if shard.is_main and output.summary_path:
        document = summary_json(summary, model.info, settings, policy.revision)
        Path(output.summary_path).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    check_gates(policy.gates, summary)
