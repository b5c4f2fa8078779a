"""Where a run's rows and summary go, checked (and the output locked) before the model loads, and the
run's policy on invalid records and quality gates. Torch-free: the CLI builds these by name."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, replace

from itdd_cli.errors import UsageError
from itdd_cli.io.formats import Format, resolve_format
from itdd_cli.results.outfile import Target, check_input, check_not_same, check_writable_dir, prepare_target
from itdd_cli.results.runrecord import read_record, record_path
from itdd_cli.results.summary import Gate


@dataclass(frozen=True)
class Output:
    path: str | None = None
    fmt: Format = Format.auto
    overwrite: bool = False
    resume: bool = False
    summary_path: str | None = None
    quiet: bool = False
    target: Target | None = None  # prepared (checked and locked) before the model loaded


@dataclass(frozen=True)
class Policy:
    skip_invalid: bool = False
    gates: list[Gate] = field(default_factory=list)
    revision: str | None = None


def prepare_output(output: Output, input_path: str | None) -> Output:
    """Every check on input, output and summary that can fail before scoring; locks the output.
    The caller closes `target` (the lock, an uncommitted temporary file) when the run ends."""
    check_input(input_path)
    target = prepare_target(output.path, input_path, output.overwrite, output.resume)
    try:
        if output.summary_path:
            check_writable_dir(output.summary_path, "--summary")
            record = record_path(str(target.path)) if target.regular else None
            check_not_same(output.summary_path, "--summary", {"input": input_path, "output": output.path,
                                                               "settings record": record})  # fmt: skip
        if output.resume and resolve_format(output.fmt, output.path, sys.stdout) is Format.table:
            raise UsageError("--resume continues a JSONL or CSV file, not a table")
        if target.resume:
            _check_resumable(str(target.path))
    except BaseException:
        target.close()
        raise
    return replace(output, target=target)


def _check_resumable(path: str) -> None:
    """Before the model loads: a file with rows but no settings record cannot be continued safely."""
    if read_record(path) is None and os.path.getsize(path) > 0:
        raise UsageError(f"cannot resume {path}: {record_path(path)} is missing, so the settings that made it "
                         "cannot be checked; use --overwrite")  # fmt: skip
