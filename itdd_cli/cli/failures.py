"""The one map from a failure to its line on stderr and its exit code, applied around every command."""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from typing import Any

from typer._click.exceptions import ClickException

from itdd_cli.cli.usage import describe
from itdd_cli.errors import Interrupted, ItddError

# The one map from a failure to its line on stderr and its exit code (first match wins).


def _internal(error: BaseException) -> tuple[str, int]:
    return f"internal error: {type(error).__name__}: {error} (set ITDD_DEBUG=1 for the traceback)", 1


# A reader that closed the pipe (`itdd … | head -1`) ends the run quietly with 141 = 128 + SIGPIPE,
# what a shell reports for any tool stopped by a closed pipe.
BROKEN_PIPE = 141


def _broken_pipe(error: BrokenPipeError) -> tuple[str, int]:
    devnull = os.open(os.devnull, os.O_WRONLY)  # Python's final flush of stdout must not fail again
    os.dup2(devnull, 1)
    os.close(devnull)
    return "", BROKEN_PIPE


ERROR_MAP: list[tuple[type[BaseException], Callable[[Any], tuple[str, int]]]] = [
    (BrokenPipeError, _broken_pipe),
    (ItddError, lambda error: (str(error), error.exit_code)),
    (ClickException, lambda error: (describe(error), error.exit_code)),  # option parsing: exit 2
    (Interrupted, lambda error: (f"interrupted; {error.kept}", 130)),
    (KeyboardInterrupt, lambda error: ("interrupted", 130)),  # before scoring began: nothing was written
    (Exception, _internal),  # a bug or an unforeseen library failure: still one line
]


def report(error: BaseException) -> int:
    """One line on stderr for `error` (ERROR_MAP), the traceback too under ITDD_DEBUG=1; the exit code."""
    mapping = next((to_line for kind, to_line in ERROR_MAP if isinstance(error, kind)), None)
    if mapping is None:
        raise error
    message, code = mapping(error)
    if os.environ.get("ITDD_DEBUG"):
        traceback.print_exc()
    if message and os.environ.get("RANK", "0") == "0":  # under a launcher, the main process speaks for all
        from itdd_cli.views.reporting import stderr_console
        from itdd_cli.views.visible import visible

        stderr_console().print(f"itdd: error: {visible(' '.join(message.split()))}", markup=False)  # one line
    return code
