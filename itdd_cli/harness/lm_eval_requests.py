"""lm-eval's requests as the CLI's input records, and the runner's rows back as per-request results.

The backend (lm_eval_backend) groups requests into questions; this module says which command's
record a question is, what each row means per request, how a runner error is worded for an lm-eval
user, and how progress is shown. It imports neither lm_eval nor torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from itdd_cli.errors import ItddError
from itdd_cli.results.rows import Command, unguided

if TYPE_CHECKING:
    from itdd_cli.scoring.engine import BatchProgress


class RequestError(ItddError):
    """An lm-eval request itdd cannot score as given (exit 3, like an invalid record)."""

    exit_code = 3


@dataclass
class Question:
    """Requests sharing (task, document, context): one coupled record of k continuations."""

    context: str
    continuations: list[str] = field(default_factory=list)
    first_request: int = 0
    seen: dict[tuple[int, str], int] = field(default_factory=dict)  # (request idx, continuation) → position

    def add(self, idx: int, continuation: str) -> int:
        """The continuation's position among the question's choices. Equal continuations under different
        request idx are separate choices, as the task lists them (duplicate choices, scored as given, as
        `itdd choice` scores them); the same request sent twice is scored once."""
        key = (idx, continuation)
        if key not in self.seen:
            self.seen[key] = len(self.continuations)
            self.continuations.append(continuation)
        return self.seen[key]


@dataclass(frozen=True)
class RequestResult:
    """What itdd computed for one request: the log-likelihood, its Monte Carlo SE, the pick."""

    loglik: float
    loglik_se: float
    tokens: int
    best: bool  # the highest log-likelihood among its question's continuations
    margin: float  # the question's best − runner-up (nan for a lone continuation)
    margin_se: float
    decided: bool | None  # until_decided: the anytime-valid rule decided the question (None: fixed draws)
    passes: int  # forward rows the question took, every continuation together


def split_boundary(context: str, continuation: str) -> tuple[str, str]:
    """Trailing whitespace of the context belongs to the continuation (lm-eval's convention)."""
    stripped = context.rstrip()
    return stripped, context[len(stripped) :] + continuation


class RowsBar:
    """The progress bar lm-eval shows while a backend scores: in forward rows, a step after each batch
    (questions finish together at the end of the engine's window, so counting them would not move)."""

    def __init__(self, quiet: bool) -> None:
        self.bar = tqdm(total=0, desc="itdd scoring", unit=" rows", disable=quiet)
        self.earlier = 0  # rows of the commands already scored

    def __enter__(self) -> RowsBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()

    def batch(self, progress: BatchProgress) -> None:
        self.bar.total = self.earlier + progress.rows_known  # grows as the engine reads more questions
        self.bar.update(self.earlier + progress.rows_done - self.bar.n)

    def next_command(self) -> None:
        self.earlier = self.bar.total or 0


def request_object(command: Command, question: Question) -> dict[str, Any]:
    """The input object the CLI's command reads for `question` (an empty context is no prompt)."""
    if command is Command.nll:
        return {"text": question.continuations[0]}
    if command is Command.cond_nll:
        return {"prompt": question.context, "response": question.continuations[0]}
    return {"prompt": question.context, "choices": list(question.continuations)}


def row_results(row: dict[str, Any]) -> list[RequestResult]:
    """One RequestResult per continuation, from the runner's row (choice; or nll / cond-nll for one); a
    guided row (cfg) under its plain names: lm-eval's log-likelihoods are then guided scores."""
    row = unguided(row)
    if "logliks" not in row:
        passes = row["samples"] * row.get("windows", 1)  # a rolled document drew -n per window
        return [RequestResult(-row["nll"], row["nll_se"], row["tokens"], True, math.nan, math.nan, None, passes)]
    return [
        RequestResult(loglik, se, tokens, i == row["pred"], row["margin"], row["margin_se"], row["decided"],
                      row["passes"])  # fmt: skip
        for i, (loglik, se, tokens) in enumerate(zip(row["logliks"], row["logliks_se"], row["tokens"], strict=True))
    ]


def advice(message: str, rolling: bool) -> str:
    """The runner's words for a too-long text name CLI options; an lm-eval user sets model args."""
    if rolling:
        return message.replace("with --long rolling", "with model_args long=rolling (and context=N)")
    return message.replace("score it in windows with --long rolling",
                           "shorten it (long=rolling rolls loglikelihood_rolling documents only)")  # fmt: skip


def multi_all(questions: list[list[RequestResult]]) -> list[list[RequestResult]]:
    """The questions with several continuations (the ones a pick is decided for)."""
    return [results for results in questions if len(results) > 1]


def describe(request: Any) -> str:
    where = f"task {request.task_name}, doc {request.doc_id}" if request.task_name else f"request {request.idx}"
    text = request.args[-1] if isinstance(request.args[-1], str) else request.args[0]
    return f"lm-eval request ({where}, text {text[:40]!r}{'…' if len(text) > 40 else ''})"
