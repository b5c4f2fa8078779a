"""Where a scoring run's rows go, checked before the model loads.

Nothing the user owns is touched until scoring produces its first row: a new or `--overwrite`
output is written to a temporary file beside the target and renamed over it at the first row
(or at the end of a run with no rows); `--resume` appends to the file in place. An exclusive
lock (`OUT.lock`, flock) keeps a second run off the same output. Standard output and character
devices (`/dev/null`) are written directly, without lock, temporary file or settings record.
Imports neither torch nor transformers.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import signal
import stat
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from itdd_cli.errors import ModelError, UsageError

INTERRUPTS = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block ends (then act as usual), so that an output file
    and its settings record appear together: an output without its record cannot be resumed.

    Python-level handlers, not a signal mask: a mask covers one thread, and torch's threads would
    still take a process-directed signal and have Python act on it at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {signum: signal.getsignal(signum) for signum in INTERRUPTS}
    for signum, handler in previous.items():
        if handler is not None:  # None: a handler not set from Python, left alone
            signal.signal(signum, lambda number, frame: caught.append(number))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if handler is not None:
                signal.signal(signum, handler)
        if caught:
            signal.raise_signal(caught[0])  # now handled as it would have been


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise UsageError(f"cannot read {path}: {_reason(error)}") from error


def check_input(path: str | None) -> None:
    """A readable input: a file, a pipe, a FIFO or a device (`<(cmd)`, `/dev/stdin`), not a directory."""
    if path in (None, "-"):
        if sys.stdin is None:
            raise UsageError("standard input is closed; name an input file")
        return
    info = _stat(path)
    if info is None:
        raise UsageError(f"cannot read {path}: no such file")
    if stat.S_ISDIR(info.st_mode):
        raise UsageError(f"cannot read {path}: it is a directory; name a JSONL file")
    if not os.access(path, os.R_OK):
        raise UsageError(f"cannot read {path}: permission denied")


def check_writable_dir(path: str, what: str) -> None:
    """The directory of `path` exists and accepts a new file (probed: a read-only file system says so)."""
    parent = Path(path).parent
    if not parent.is_dir():
        raise UsageError(f"cannot write {what} {path}: directory {parent} does not exist")
    if Path(path).is_dir():
        raise UsageError(f"cannot write {what} {path}: it is a directory")
    try:
        descriptor, probe = tempfile.mkstemp(prefix=".itdd-probe-", dir=parent)
    except OSError as error:
        raise UsageError(f"cannot write {what} {path}: {_reason(error)}") from error
    os.close(descriptor)
    os.unlink(probe)


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


@dataclass
class Target:
    """The output of one run. `open()` hands the stream the sink writes to; `commit()` puts a
    new file in place (idempotent); `close()` releases the lock and removes what was not committed."""

    path: str | None  # None: standard output
    resume: bool = False
    direct: bool = False  # standard output or a device: written as is
    lock_fd: int | None = None
    file_lock_fd: int | None = None  # the existing file's own lock: another name of it (a hard link) is refused too
    temp: str | None = None
    stream: TextIO | None = None
    committed: bool = False

    @property
    def regular(self) -> bool:
        return self.path is not None and not self.direct

    @property
    def lock_path(self) -> str:
        return f"{self.path}.lock"

    def open(self) -> TextIO:
        if self.path is None:
            self.stream = sys.stdout
        elif self.direct:
            self.stream = self._opened(self.path, "w")
        elif self.resume:
            self.stream = self._opened(self.path, "a")
            self.committed = True
        else:
            descriptor, self.temp = tempfile.mkstemp(prefix=f".{Path(self.path).name}.", suffix=".part",
                                                     dir=Path(self.path).parent)  # fmt: skip
            os.fchmod(descriptor, 0o666 & ~_umask())
            self.stream = os.fdopen(descriptor, "w", encoding="utf-8", newline="")
        return self.stream

    def _opened(self, path: str, mode: str) -> TextIO:
        try:
            return open(path, mode, encoding="utf-8", newline="")
        except OSError as error:
            raise UsageError(f"cannot write {path}: {_reason(error)}") from error

    def commit(self) -> None:
        """Rename the temporary file over the target: from here on the rows written are the user's."""
        if self.committed or self.temp is None or self.path is None:
            return
        os.replace(self.temp, self.path)
        self.temp, self.committed = None, True

    def close(self) -> None:
        if self.stream is not None and self.stream is not sys.stdout:
            with contextlib.suppress(OSError):
                self.stream.close()
        if self.temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.temp)
            self.temp = None
        if self.lock_fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.lock_path)
            os.close(self.lock_fd)
            self.lock_fd = None
        if self.file_lock_fd is not None:
            os.close(self.file_lock_fd)
            self.file_lock_fd = None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _lock(path: str) -> int:
    """An exclusive lock on `path.lock`; a second run on the same output is refused, not queued."""
    lock_path = f"{path}.lock"
    for _ in range(10):  # the holder may remove the lock file between our open and flock: retry
        try:
            descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as error:
            raise UsageError(f"cannot lock {path}: {_reason(error)}") from error
        _flock(descriptor, path, f"(it holds {lock_path})")
        current = _stat(lock_path)
        if current is not None and _same_file(current, os.fstat(descriptor)):
            return descriptor
        os.close(descriptor)
    raise UsageError(f"cannot lock {path}: {lock_path} keeps changing")


def _lock_file(path: str) -> int:
    """An exclusive lock on the existing output file itself, whatever name it is reached by."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError as error:
        raise UsageError(f"cannot read {path}: {_reason(error)}") from error
    _flock(descriptor, path, "under another name (a hard link)")
    return descriptor


def _flock(descriptor: int, path: str, holder: str) -> None:
    """Take an exclusive lock on `descriptor` or refuse: a second run is refused, not queued (closes it then)."""
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        os.close(descriptor)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise UsageError(f"another itdd run is writing {path} {holder}; wait for it to finish or choose "
                             "another -o") from None  # fmt: skip
        raise UsageError(f"cannot lock {path}: {_reason(error)}") from error


def _input_stat(input_path: str | None) -> os.stat_result | None:
    """The input file's identity; for standard input, the file it is redirected from (`< FILE`)."""
    if input_path not in (None, "-"):
        return _stat(str(input_path))
    try:
        return os.fstat(sys.stdin.fileno()) if sys.stdin is not None else None
    except (OSError, ValueError):  # a stdin without a descriptor (tests)
        return None


def prepare_target(path: str | None, input_path: str | None, overwrite: bool, resume: bool) -> Target:
    """Every check on the output that can fail before scoring, and its lock."""
    if resume and path in (None, "-"):
        raise UsageError("--resume needs -o/--output: a file to continue")
    if resume and overwrite:
        raise UsageError("--resume and --overwrite contradict each other; choose one")
    if path in (None, "-") or _is_stdout(path):
        if sys.stdout is None:
            raise UsageError("standard output is closed; pass -o FILE")
        if resume:
            raise UsageError(f"--resume continues a regular file; {path} is standard output")
        return Target(None, direct=True)
    assert path is not None
    if os.path.islink(path):
        path = os.path.realpath(path)  # the link's target gets the rows; the link itself stays
    info = _stat(path)
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise UsageError(f"cannot write {path}: it is a directory")
    if info is not None and (stat.S_ISCHR(info.st_mode) or stat.S_ISFIFO(info.st_mode)):
        if resume:
            raise UsageError(f"--resume continues a regular file; {path} is a device or a pipe")
        return Target(path, direct=True)
    source = _input_stat(input_path)
    if info is not None and source is not None and _same_file(info, source):
        raise UsageError(f"the output {path} is the input file; write the results elsewhere")
    if info is not None and not (overwrite or resume):
        raise UsageError(f"{path} exists; pass --overwrite to replace it or --resume to continue it")
    check_writable_dir(path, "output")
    if info is not None and not os.access(path, os.W_OK):
        raise UsageError(f"cannot write {path}: permission denied")
    main = os.environ.get("RANK", "0") == "0"  # under a launcher only the main process writes
    if not main:
        return Target(path, resume=resume and info is not None)
    target = Target(path, resume=resume and info is not None, lock_fd=_lock(path))
    if info is not None and stat.S_ISREG(info.st_mode):
        try:
            target.file_lock_fd = _lock_file(path)
        except BaseException:
            target.close()
            raise
    return target


def _is_stdout(path: str) -> bool:
    """`-o /dev/stdout` (or any name of the file standard output already is): write to it as `-`."""
    if sys.stdout is None:
        return False
    try:
        return _same_file(os.stat(path), os.fstat(sys.stdout.fileno()))
    except (OSError, ValueError):  # no such file, or a stdout without a descriptor (tests)
        return False


def check_not_same(path: str, what: str, others: dict[str, str | None]) -> None:
    """`what` (e.g. --summary) must not be the input or the output: writing it would destroy them."""
    info = _stat(path)
    for name, other in others.items():
        if other in (None, "-"):
            continue
        other_info = _stat(other)
        same_name = os.path.realpath(path) == os.path.realpath(other)  # an output not written yet
        if same_name or (info is not None and other_info is not None and _same_file(info, other_info)):
            raise UsageError(f"{what} {path} is the {name} file; write it elsewhere")


def write_failure(error: OSError, path: str | None, rows: int, committed: bool | None) -> ModelError:
    """A failed write (a full disk, `/dev/full`) as one line; the whole rows before it stay written.
    `committed`: whether a regular output file holds rows (None: standard output or a device)."""
    where = path or "standard output"
    reason = "the disk is full" if error.errno in (errno.ENOSPC, errno.EDQUOT) else _reason(error)
    if committed is False:
        return ModelError(f"cannot write {where}: {reason}; no row could be written, so {where} was not changed")
    resume = " (continue with --resume once there is room)" if committed else ""
    return ModelError(f"cannot write {where}: {reason}; the {rows} rows finished before are kept{resume}")
