"""One scoring run from the command line: input → (shards) → runner → sink, with resume,
skipping, the summary and quality gates. Commands call `run_scoring` and nothing else.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any, TextIO

from itdd_cli.core.settings import Settings
from itdd_cli.errors import GateError, InputError, Interrupted, ModelError, UsageError
from itdd_cli.io.formats import Format, resolve_format
from itdd_cli.io.records import Fields, flag_duplicate_ids
from itdd_cli.io.sources import Source, read_source
from itdd_cli.models.base import ScoringModel
from itdd_cli.models.text import tokenizer_fingerprint
from itdd_cli.results.destination import Output, Policy, prepare_output
from itdd_cli.results.outfile import (
    Target,
    interrupts_deferred,
    write_failure,
)
from itdd_cli.results.resume import Finished, Inspected, plan_resume, read_finished
from itdd_cli.results.rows import SPECS, Command
from itdd_cli.results.runrecord import (
    DETERMINING,
    ROUNDING,
    ROUNDING_FLAGS,
    differences,
    guided_values,
    input_fields,
    read_record,
    settings_values,
    weights_fingerprint,
    write_record,
)
from itdd_cli.results.summary import Summary, check_gates, summary_json
from itdd_cli.run.parallel import Shard, close_shard, current_shard, score_sharded
from itdd_cli.scoring import engine as engine_module
from itdd_cli.scoring.engine import BatchProgress
from itdd_cli.scoring.runner import Lossy, Skipped, check_samples, score, stopped_at_cap, token_counts
from itdd_cli.version import __version__
from itdd_cli.views.reporting import console_for, make_sink, notice, print_summary, progress_bar, stderr_console


def run_scoring(command: Command, input_path: str | Source | None, model: ScoringModel, settings: Settings,
                fields: Fields, output: Output, policy: Policy) -> None:  # fmt: skip
    """Open (format, resume), stream (input → rows → sink), finish (summary, gates)."""
    prepared = output if output.target else prepare_output(output, input_path)
    assert prepared.target is not None
    shard = current_shard()
    try:
        check_samples(settings.samples, 1)  # the smallest record: refuse an impossible -n before reading
        run = _Run(command, model, settings, fields, prepared, policy, shard, prepared.target)
        with ExitStack() as stack:
            try:
                run.stream(input_path, stack)
            except KeyboardInterrupt:
                raise Interrupted(run.kept()) from None
        run.finish()
    finally:
        if not output.target:
            prepared.target.close()
        close_shard(shard)


def run_settings(command: Command, model: ScoringModel, settings: Settings, fields: Fields,
                  revision: str | None) -> dict[str, Any]:  # fmt: skip
    """What the settings record holds: everything that fixes the numbers, then what rounds them."""
    spec = SPECS[command]
    info = model.info
    return {
        "tool_version": __version__,
        "command": command.value,
        "model": info.name,
        "revision": revision,
        "weights": weights_fingerprint(info.name, revision, info.adapter.base if info.adapter else None),
        "tokenizer": tokenizer_fingerprint(getattr(model, "tokenizer", None)),
        "block_size": info.block_size,
        "family": info.family,
        "dtype": info.dtype,
        "framing": info.framing,
        **settings_values(spec, settings),
        "fields": input_fields(spec, fields),
        "device": info.device,
        "batch_rows": settings.batch_rows,
        "max_tokens": settings.max_tokens,
    } | guided_values(settings)


def _auto(value: Any) -> str:
    return "auto" if value is None else str(value)


class _Run:
    def __init__(self, command: Command, model: ScoringModel, settings: Settings, fields: Fields, output: Output,
                 policy: Policy, shard: Shard, target: Target) -> None:  # fmt: skip
        self.command, self.model, self.settings, self.fields = command, model, settings, fields
        self.output, self.policy, self.shard, self.target = output, policy, shard, target
        self.format = resolve_format(output.fmt, output.path, sys.stdout)
        self.record = run_settings(command, model, settings, fields, policy.revision) if target.regular else {}
        self.skipped_lines: list[int] = []
        self.lossy_lines: list[int] = []
        self.finished = Finished([], [], 0)
        if target.resume:
            self.finished = read_finished(Path(str(target.path)), self.format is Format.csv)
            self._check_recorded()
        self.summary = Summary(command, processes=shard.world, guided=settings.guidance is not None)
        self.stream_out: TextIO = sys.stdout
        self.header = True

    def _check_recorded(self) -> None:
        path = str(self.target.path)
        recorded = read_record(path)
        if recorded is None:  # an empty file (prepare_output refused one with rows and no record)
            return
        earlier = recorded["settings"]
        changed = differences(earlier, self.record, DETERMINING)
        if changed:
            raise UsageError(f"cannot resume {path}: it was made with other settings ({'; '.join(changed)}); "
                             "rerun with the same settings or use --overwrite")  # fmt: skip
        rounding = [f"{ROUNDING_FLAGS[name]} {_auto(earlier.get(name))} → {_auto(self.record.get(name))}"
                    for name in ROUNDING if earlier.get(name) != self.record.get(name)]  # fmt: skip
        if rounding and self.shard.is_main:
            notice(f"resuming {path} with {'; '.join(rounding)}: the rows scored now may differ from an "
                   "uninterrupted run in the last digits (float rounding of other batch shapes)")  # fmt: skip
        self.skipped_lines = [line for line in recorded.get("skipped_lines", []) if isinstance(line, int)]
        self.lossy_lines = [line for line in recorded.get("lossy_lines", []) if isinstance(line, int)]

    def _objects(self, source: Source, stack: ExitStack) -> Iterator[tuple[int, dict[str, Any] | InputError]]:
        objects = flag_duplicate_ids(read_source(source, self.fields.text, stack), self.fields.id, source.noun)
        if not self.target.resume:
            return objects
        spec = SPECS[self.command]

        def inspect(obj: dict[str, Any], line: int) -> Inspected:
            record = spec.parse(obj, line, self.fields)
            counts, draws = token_counts(self.command, self.model, record, self.settings)
            return Inspected((type(record.id).__name__, record.id), counts, draws)

        point, rest = plan_resume(objects, self.finished, set(self.skipped_lines), inspect,
                                  engine_module.WINDOW_ROWS, str(self.output.path))  # fmt: skip
        if self.shard.is_main:
            with open(str(self.target.path), "r+b") as file:
                file.truncate(point.offset)
        for row in self.finished.rows[: point.rows]:
            self.summary.add(row)
        self.skipped_lines = [line for line in self.skipped_lines if point.line is None or line < point.line]
        self.lossy_lines = [line for line in self.lossy_lines if point.line is None or line < point.line]
        self.summary.skipped, self.summary.lossy = len(self.skipped_lines), len(self.lossy_lines)
        self.header = point.offset == 0
        if self.shard.is_main:
            self._write_record()
        return rest

    def _rows(self, objects: Iterator[tuple[int, dict[str, Any] | InputError]],
              on_batch: Callable[[BatchProgress], None]) -> Iterator[dict[str, Any] | Skipped]:  # fmt: skip
        def score_some(chunk: Iterable[tuple[int, dict[str, Any] | InputError]]) -> Iterator[dict[str, Any] | Skipped]:
            return score(self.command, chunk, self.model, self.settings, self.fields, self.policy.skip_invalid,
                         on_batch)  # fmt: skip

        return score_sharded(objects, score_some, self.shard) if self.shard.world > 1 else score_some(objects)

    def _commit(self) -> None:
        """The first row (or the end): the output becomes the user's, with its settings record."""
        if self.target.regular and not self.target.committed:
            with interrupts_deferred():
                self.target.commit()
                self._write_record()

    def stream(self, input_path: str | Source | None, stack: ExitStack) -> None:
        """Every row to the sink as it finishes; what finished stays written on any failure."""
        source = input_path if isinstance(input_path, Source) else Source(input_path)
        objects = self._objects(source, stack)  # resume: cuts the file back to where scoring restarts
        if self.shard.is_main:
            self.stream_out = self.target.open()
        else:
            self.stream_out = stack.enter_context(open(os.devnull, "w"))
        sink = make_sink(self.format, self.stream_out, self.command, header=self.header,
                         guided=self.settings.guidance is not None)  # fmt: skip
        unit = source.unit()
        show_progress = self.shard.is_main and not self.output.quiet and sys.stderr.isatty()
        capped, closed = 0, False
        good = self._position()
        try:
            with progress_bar(source.countable_path, enabled=show_progress, finished=self.summary.records,
                              limit=source.limit) as bar:
                for row in _relabelled(self._rows(objects, bar.batch), unit):
                    if isinstance(row, Skipped):
                        self.summary.skipped += 1
                        self.skipped_lines.append(row.line)
                        if self.target.committed and self.shard.is_main:
                            self._write_record()
                        notice(f"skipped {unit} {row.line}: {row.message}")
                        bar.record(self.summary)
                        continue
                    if isinstance(row, Lossy):
                        self.summary.lossy += 1
                        self.lossy_lines.append(row.line)
                        if self.target.committed and self.shard.is_main:
                            self._write_record()  # before the row: a cut after it never forgets the loss
                        notice(f"{unit} {row.line}: {row.message} — --strict refuses such records")
                        row = row.row
                    sink.write(row)
                    if self.shard.is_main:
                        self._commit()  # after the row is written: a failed first write replaces nothing
                    good = self._position()
                    self.summary.add(row)
                    bar.record(self.summary)
                    capped += stopped_at_cap(row, self.settings)
            if self.shard.is_main:
                self._commit()
            sink.close()
            closed = True  # a table sink prints its table when closed: only once
        except OSError as error:
            if isinstance(error, BrokenPipeError) or not self.shard.is_main:
                raise
            self._cut_back(good)
            committed = self.target.committed if self.target.regular else None
            raise write_failure(error, self.target.path, self.summary.records, committed) from None
        finally:
            if not closed:
                with suppress(OSError, ValueError):  # ValueError: the stream was closed after a failed write
                    sink.close()
        self.summary.finished = time.perf_counter()
        if not self.shard.is_main:
            return
        if capped:
            goal = "a decision" if self.settings.until_decided is not None else "the requested precision"
            notice(f"{capped} record(s) stopped at --max-samples {self.settings.cap} before reaching {goal}; "
                   "raise --max-samples to go further")  # fmt: skip
        if self.format is Format.table:
            print_summary(console_for(self.stream_out), self.summary, self.model.info, self.settings)
        elif not self.output.quiet:
            print_summary(stderr_console(), self.summary, self.model.info, self.settings)

    def kept(self) -> str:
        """What an interrupted run leaves, in words: never advice to resume a file that was not written."""
        if not self.target.regular:
            return f"the {self.summary.records} rows finished so far are written"
        if not self.target.committed:
            return f"no row was finished, so {self.target.path} was not written"
        return f"the {self.summary.records} rows finished so far are in {self.target.path} (continue with --resume)"

    def _write_record(self) -> None:
        write_record(str(self.target.path), self.record, self.skipped_lines, self.lossy_lines)

    def _position(self) -> int | None:
        if not self.target.regular or self.stream_out is sys.stdout:
            return None
        return self.stream_out.tell()

    def _cut_back(self, good: int | None) -> None:
        """A failed write may leave half a row: cut the file back to the last whole one."""
        with suppress(OSError):
            self.stream_out.close()
        if good is not None and self.target.committed and self.target.path:
            with suppress(OSError):
                os.truncate(self.target.path, good)

    def finish(self) -> None:
        """The JSON summary (main process), then the quality gates."""
        if self.shard.is_main and self.output.summary_path:
            document = summary_json(self.summary, self.model.info, self.settings, self.policy.revision)
            try:
                Path(self.output.summary_path).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
            except OSError as error:
                problem = f"cannot write --summary {self.output.summary_path}: {error.strerror or error}"
                try:
                    check_gates(self.policy.gates, self.summary)
                except GateError as failed:  # a failed gate still says so (exit 4), on the same one line
                    raise GateError(f"{failed}; and {problem}") from None
                raise ModelError(f"{problem}; the results are written") from None
        check_gates(self.policy.gates, self.summary)


def _relabelled(rows: Iterator[dict[str, Any] | Skipped], unit: str) -> Iterator[dict[str, Any] | Skipped]:
    """An invalid record's error names it as its source counts records (a CSV line, a Parquet row, …)."""
    try:
        yield from rows
    except InputError as error:
        if unit == error.unit:
            raise
        raise InputError(error.line, error.message, unit) from None
