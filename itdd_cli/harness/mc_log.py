"""lm-eval's `mc_log=PATH`: every request's log-likelihood and Monte Carlo SE as JSONL, kept by `-o`'s rules.

An existing file is refused unless `mc_log_overwrite=true`; a file the run reads (a task's YAML, or
a file a task YAML names, as its `data_files`) is refused even then; the rows are
written to a temporary file and renamed over PATH (outfile.Target), so a run never appends to
another's rows and a crash leaves the old file or the new one. A settings record (`PATH.meta.json`,
as beside an `-o` file) says what fixed the numbers. Knows nothing about lm-eval's requests.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from itdd_cli.errors import UsageError
from itdd_cli.results.outfile import prepare_target
from itdd_cli.results.runrecord import write_record


def check_path(name: str, value: Any, overwrite: bool) -> str:
    """Before the model loads: a file that can be written, and not one already there unless told."""
    path = Path(str(value))
    if path.is_dir():
        raise UsageError(f"{name} {path}: is a directory; name a file for the JSONL of standard errors")
    if not path.parent.is_dir():
        raise UsageError(f"{name} {path}: no such directory {path.parent}; create it or choose another path")
    if path.exists() and not overwrite and not _device(path):
        raise UsageError(f"{name} {path} exists; pass mc_log_overwrite=true to replace it, or choose another path")
    return str(path)


def check_not_input(name: str, value: str, sources: Iterable[str]) -> None:
    """`value` is not a file the run reads: a task YAML (`sources` are `--config`, `--tasks` paths and
    `--include_path` directories) nor a file one of them names (`data_files`, relative to the working
    directory as lm-eval reads them)."""
    path = Path(value)
    if not path.is_file():
        return
    for task in _task_files(sources):
        if _same(task, path):
            raise UsageError(f"{name} {value} is an input of this run (a task file); write it elsewhere")
        for word in _PATH_LIKE.findall(task.read_text(encoding="utf-8", errors="replace")):
            if _same(Path(word), path):
                raise UsageError(f"{name} {value} is an input of this run (named in {task}); write it elsewhere")


_PATH_LIKE = re.compile(r"[^\s'\"\[\]{},:#]+")


def _task_files(sources: Iterable[str]) -> Iterator[Path]:
    for source in map(Path, sources):
        if source.is_dir():
            yield from sorted(file for pattern in ("*.yaml", "*.yml") for file in source.rglob(pattern))
        elif source.is_file():
            yield source


def _same(a: Path, b: Path) -> bool:
    try:
        return a.is_file() and os.path.samefile(a, b)
    except OSError:
        return False


def _device(path: Path) -> bool:
    return path.exists() and not path.is_file()  # /dev/null, a FIFO: written as is, as -o does


class McLog:
    """The rows of one run, rewritten whole (temporary file + rename) after each request type."""

    def __init__(self, path: str, overwrite: bool, settings: dict[str, Any]) -> None:
        self.path, self.overwrite, self.settings = path, overwrite, settings
        self.rows: list[dict[str, Any]] = []

    def write(self, rows: list[dict[str, Any]]) -> None:
        self.rows.extend(rows)
        target = prepare_target(self.path, None, self.overwrite, resume=False)
        try:
            stream = target.open()
            stream.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in self.rows)
            stream.flush()
            if target.regular:
                write_record(str(target.path), self.settings, [], [])
            target.commit()
        finally:
            target.close()
        self.overwrite = True  # the file is this run's now
