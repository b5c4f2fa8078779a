"""The lm-evaluation-harness model backend `itdd` (`--model itdd`), and `itdd lm-eval`.

lm-eval 0.4.13 finds outside backends only if they are imported before it looks them up, so
`itdd lm-eval …` registers this class and hands the rest of its command line to lm-eval's own
CLI; newer releases find it through the `lm_eval.models` entry point. `simple_evaluate(model=
ItddLM(pretrained=…))` works with any release.

How requests become estimates:

- `loglikelihood`: the trailing whitespace of a context moves to the front of its continuation
  (lm-eval's boundary convention); requests of one question (same task, document and context)
  are scored as one `itdd choice` record, so the k answers share their draws and their numbers
  equal `itdd choice` on the same prompt and choices — duplicate choices included, each scored as
  its own choice (lm-eval picks the first of equal log-likelihoods, as `itdd choice` does).
  `is_greedy` is always False: itdd scores, it never decodes, so it cannot say which continuation
  greedy decoding would produce.
- `loglikelihood_rolling`: `itdd nll` of the whole document; one longer than the model's window
  is an error naming the request (rolling windows are not implemented).
- `generate_until`: an error — itdd scores text, it does not generate.

Each request's Monte Carlo standard error is kept (`last_results`, and `mc_log=PATH` writes them
as JSONL), and a summary says how many questions are undecided at this budget. This module
knows lm-eval's `LM` contract; the estimates come from the runner, as for the CLI.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import lm_eval.models  # noqa: F401  (registers lm-eval's own backends before ours)
import torch
from lm_eval.api.instance import Instance
from lm_eval.api.model import LM
from lm_eval.api.registry import model_registry
from lm_eval.utils import simple_parse_args_string
from tqdm import tqdm

from itdd_cli import checks
from itdd_cli.api import Scorer
from itdd_cli.draws import run_rounds
from itdd_cli.engine import Engine
from itdd_cli.errors import InputError, ItddError
from itdd_cli.lm_eval_args import check_named_device, harness_device, parse_model_args
from itdd_cli.mc_log import McLog, check_not_input, check_path
from itdd_cli.parallel import close_shard, current_shard
from itdd_cli.processes import launched
from itdd_cli.records import Fields, Record
from itdd_cli.rows import FIXED_PROTOCOL_DRAWS, UNDECIDED_SE, Command
from itdd_cli.runner import check_guidance, choice_scores, prepare
from itdd_cli.session import run_settings

logger = logging.getLogger("lm_eval.itdd")  # under lm-eval's logger, so its handler prints it


class RequestError(ItddError):
    """An lm-eval request itdd cannot score as given (exit 3, like an invalid record)."""

    exit_code = 3


@dataclass
class _Question:
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


class ItddLM(LM):
    """I-MDCE Monte Carlo log-likelihoods of a masked-diffusion LM, behind lm-eval's `LM` contract.

    Model args: pretrained (hub id, directory or bundled name; default 'demo'), samples (draws per
    question, default 128), estimator, seed, independent, max_tokens, dtype, device, family,
    tokenizer, revision, trust_remote_code, chat_template (wrap the context as a user turn),
    mc_log (a JSONL path for per-request standard errors), until_decided and max_samples (draw each
    question in rounds until its pick is decided, as `itdd choice --until-decided`), each checked as its CLI option is
    (`lm_eval_args`) before the model loads. `batch_size` is itdd's forward rows per batch; 1
    (lm-eval's default) and 'auto' fill batches up to max_tokens.
    """

    def __init__(self, pretrained: str = "demo", **model_args: Any) -> None:
        super().__init__()
        args = parse_model_args({"pretrained": pretrained, **model_args})
        shard = current_shard()  # under `accelerate launch`, each process evaluates its share of documents
        self._rank, self._world_size = shard.rank, shard.world
        atexit.register(close_shard, shard)
        mc_log = args.mc_log if args.mc_log is None or shard.world == 1 else f"{args.mc_log}.rank{shard.rank}"
        if mc_log is not None:  # each process's own file, checked before the model loads
            check_path("model_args mc_log", mc_log, args.mc_log_overwrite)
        device = "auto" if args.device is None or shard.world > 1 else args.device  # a launch: one GPU each
        self.scorer = Scorer.load(args.pretrained, estimator=args.estimator, samples=args.samples, seed=args.seed,
                                  independent=args.independent, device=device, dtype=args.dtype, family=args.family,
                                  trust_remote_code=args.trust_remote_code, tokenizer=args.tokenizer,
                                  revision=args.revision, batch_size=args.batch_size, max_tokens=args.max_tokens,
                                  chat_template=args.chat_template, cfg=args.cfg)  # fmt: skip
        if args.until_decided is not None:
            self.scorer = self.scorer.with_settings(until_decided=args.until_decided, max_samples=args.max_samples)
        self.monte_carlo: dict[str, dict[str, float]] = {}  # per task: get_model_info() puts it in the results JSON
        self.mc_log = None if mc_log is None else McLog(mc_log, args.mc_log_overwrite, self._settings_record(args))
        self.last_results: list[RequestResult] = []
        self._device = self.scorer.model.info.device

    @classmethod
    def create_from_arg_obj(cls, arg_dict: dict[str, Any], additional_config: dict[str, Any] | None = None) -> ItddLM:
        """lm-eval's way in: its own flags (batch_size, device; their defaults when not given) under the
        model args, which win; lm-eval's default device falls back when absent (`harness_device`)."""
        harness = {key: value for key, value in (additional_config or {}).items() if value is not None}
        harness.pop("max_batch_size", None)  # itdd sizes batches by tokens
        device = harness.pop("device", None)
        args = parse_model_args(harness | dict(arg_dict))  # every arg checked before the device or the model
        if args.device is None and not launched():
            args = replace(args, device=harness_device(device))
        return cls(**{name: value for name, value in vars(args).items() if value is not None})

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict[str, Any] | None = None) -> ItddLM:
        return cls.create_from_arg_obj(simple_parse_args_string(arg_string), additional_config)

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """(log p(continuation | context), False) per request; see the module docstring."""
        questions: dict[tuple[Any, ...], _Question] = {}
        slots = []
        for index, request in enumerate(requests):
            context, continuation = split_boundary(*request.args)
            key = (request.task_name, request.doc_id, context)
            question = questions.setdefault(key, _Question(context, first_request=index))
            slots.append((key, question.add(request.idx, continuation)))
        order = list(questions)
        scored = dict(zip(order, self._score(requests, [questions[key] for key in order], disable_tqdm), strict=True))
        self.last_results = [scored[key][choice] for key, choice in slots]
        self._report(requests, list(scored.values()), [str(key[0]) for key in order])
        return [(result.loglik, False) for result in self.last_results]

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        """log p(document) per request, as `itdd nll` (no rolling windows: a long document is an error)."""
        checks.guidance("nll", self.scorer.settings.cfg, lambda name: f"model_args {name}")  # no prompt to guide by
        questions = [_Question("", [request.args[0]], index) for index, request in enumerate(requests)]
        self.last_results = [results[0] for results in self._score(requests, questions, disable_tqdm)]
        self._report(requests, [[result] for result in self.last_results], [str(r.task_name) for r in requests])
        return [result.loglik for result in self.last_results]

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        tasks = sorted({str(request.task_name) for request in requests})
        raise RequestError(f"itdd scores text and does not generate: {', '.join(tasks)} need generate_until; "
                           "evaluate multiple-choice or perplexity tasks")  # fmt: skip

    def _score(
        self, requests: list[Instance], questions: list[_Question], quiet: bool
    ) -> Iterator[list[RequestResult]]:
        scorer = self.scorer
        check_guidance(Command.choice, scorer.model, scorer.settings)  # cfg: refused for block models

        def tasks() -> Iterator[tuple[int, Any]]:
            for number, question in enumerate(questions):
                names = tuple(f"continuation {i}" for i in range(len(question.continuations)))
                record = Record(number + 1, number, question.context or None, tuple(question.continuations),
                                names=names)  # fmt: skip
                try:
                    yield prepare(scorer.model, record, scorer.settings)
                except InputError as error:
                    raise RequestError(f"{_describe(requests[question.first_request])}: {error.message}") from None

        engine = Engine(scorer.model, batch_rows=scorer.settings.batch_rows, max_tokens=scorer.settings.max_tokens,
                        guidance=scorer.settings.guidance)  # fmt: skip
        rows_per_draw = 1 if scorer.settings.guidance is None else 2  # cfg: each draw and its unconditional twin
        with tqdm(total=len(questions), desc="itdd scoring", disable=quiet or self.rank != 0) as progress:
            for prepared in run_rounds(engine, tasks(), lambda item: item.draws, scorer.settings.adaptive):
                if prepared.lost:  # scored as `itdd choice` scores it; the loss is said, not hidden
                    request = requests[questions[prepared.record.id].first_request]
                    logger.warning(f"itdd: {_describe(request)}: {prepared.lost}")
                scores = choice_scores(prepared)
                margin = scores.margin() if len(scores.nll) > 1 else None
                best = scores.pred()
                draws = prepared.draws
                yield [
                    RequestResult(-estimate.value, estimate.se, framed.length, i == best,
                                  math.nan if margin is None else margin.value,
                                  math.nan if margin is None else margin.se,
                                  getattr(draws, "decided", None),
                                  getattr(draws, "forward_rows", 0) * rows_per_draw)  # fmt: skip
                    for i, (estimate, framed) in enumerate(zip(scores.nll, prepared.framed, strict=True))
                ]
                progress.update(1)

    def _report(self, requests: list[Instance], questions: list[list[RequestResult]], tasks: list[str]) -> None:
        if not questions:
            return
        self._tally(questions, tasks)
        ses = [result.loglik_se for results in questions for result in results]
        multi = [results[0] for results in questions if len(results) > 1]
        undecided = sum(result.margin <= UNDECIDED_SE * result.margin_se for result in multi)
        settings = self.scorer.settings
        logger.info(
            f"itdd: {len(requests)} requests, {len(questions)} questions ({settings.estimator.value}, "
            f"{settings.samples} draws, seed {settings.seed}); mean Monte Carlo SE of a log-likelihood "
            f"{sum(ses) / len(ses):.4g} nats; {undecided} of {len(multi)} multiple-choice questions undecided "
            f"(best − runner-up within {UNDECIDED_SE:g} SE)"
        )
        adaptive = [results[0] for results in multi_all(questions) if results[0].decided is not None]
        if adaptive:
            rows = sum(result.passes for result in adaptive)
            fixed = FIXED_PROTOCOL_DRAWS * sum(len(results) for results in multi_all(questions))
            logger.info(f"itdd: until_decided {settings.until_decided:g}: {sum(r.decided for r in adaptive)} of "
                        f"{len(adaptive)} questions decided; {rows} forward rows (LLaDA's fixed protocol, "
                        f"{FIXED_PROTOCOL_DRAWS} per continuation: {fixed})")  # fmt: skip
        if self.mc_log is not None:
            self.mc_log.write([{"task": request.task_name, "doc_id": request.doc_id, "idx": request.idx,
                                "arguments": list(request.args)} | vars(result)
                               for request, result in zip(requests, self.last_results, strict=True)])  # fmt: skip

    def _settings_record(self, args: Any) -> dict[str, Any]:
        """What fixed the numbers in mc_log, as `-o`'s settings record says it (`PATH.meta.json`)."""
        record = run_settings(Command.choice, self.scorer.model, self.scorer.settings, Fields(), args.revision)
        return record | {"command": "lm-eval", "fields": None}

    def _tally(self, questions: list[list[RequestResult]], tasks: list[str]) -> None:
        """Per task, running sums of the Monte Carlo summary (the results JSON's `itdd_monte_carlo`)."""
        for results, task in zip(questions, tasks, strict=True):
            sums = self.monte_carlo.setdefault(task, {"questions": 0, "requests": 0, "se_sum": 0.0, "decided": 0,
                                                       "adaptive": 0, "forward_rows": 0})  # fmt: skip
            sums["questions"] += 1
            sums["requests"] += len(results)
            sums["se_sum"] += sum(result.loglik_se for result in results)
            sums["forward_rows"] += results[0].passes
            if results[0].decided is not None:
                sums["adaptive"] += 1
                sums["decided"] += results[0].decided

    def get_model_info(self) -> dict[str, Any]:
        """What lm-eval adds to its results JSON (`config`): per task, the Monte Carlo summary — mean SE of a
        log-likelihood, the share of questions decided (until_decided; else null), forward rows in all and
        what LLaDA's fixed protocol (128 per continuation) would have spent. This process's questions only."""
        settings = self.scorer.settings
        tasks = {
            task: {
                "questions": int(sums["questions"]),
                "mean_loglik_se": sums["se_sum"] / sums["requests"],
                "share_decided": sums["decided"] / sums["adaptive"] if sums["adaptive"] else None,
                "forward_rows": int(sums["forward_rows"]),
                "fixed_protocol_rows": FIXED_PROTOCOL_DRAWS * int(sums["requests"]),
            }
            for task, sums in self.monte_carlo.items()
        }
        return {"itdd_monte_carlo": {"estimator": settings.estimator.value, "samples": settings.samples,
                                     "until_decided": settings.until_decided,
                                     "max_samples": settings.cap if settings.adaptive else None,
                                     "seed": settings.seed, "cfg": settings.cfg, "tasks": tasks}}  # fmt: skip

    @property
    def tokenizer_name(self) -> str:
        return str(getattr(self.scorer.model.tokenizer, "name_or_path", "itdd")).replace("/", "__")

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return self.scorer.model.tokenizer.apply_chat_template(
            chat_history, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.world_size <= 1:
            return tensor
        import torch.distributed as dist

        parts = [torch.zeros_like(tensor, device="cpu") for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.cpu())  # gloo, beside any GPU backend
        return (torch.stack(parts) if tensor.dim() == 0 else torch.cat(parts)).to(tensor.device)

    def gather_object(self, obj: Any, dst: int = 0) -> list[Any] | None:
        if self.world_size <= 1:
            return [obj]
        import torch.distributed as dist

        gathered = [None] * self.world_size if self.rank == dst else None
        dist.gather_object(obj, gathered, dst=dst)
        return gathered

    def barrier(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()


def multi_all(questions: list[list[RequestResult]]) -> list[list[RequestResult]]:
    """The questions with several continuations (the ones a pick is decided for)."""
    return [results for results in questions if len(results) > 1]


def _describe(request: Instance) -> str:
    where = f"task {request.task_name}, doc {request.doc_id}" if request.task_name else f"request {request.idx}"
    text = request.args[-1] if isinstance(request.args[-1], str) else request.args[0]
    return f"lm-eval request ({where}, text {text[:40]!r}{'…' if len(text) > 40 else ''})"


def register() -> None:
    """Make `--model itdd` known to lm-eval (a no-op where an entry point already named it)."""
    if "itdd" not in model_registry:
        model_registry.register("itdd", target=ItddLM)


def run_lm_eval(arguments: list[str]) -> None:
    """lm-eval's own command line with the `itdd` backend registered."""
    from lm_eval._cli.harness import HarnessCLI
    from lm_eval.utils import setup_logging

    register()
    sys.argv = ["lm-eval", *arguments]
    setup_logging()  # lm-eval's own entry point (`lm_eval.__main__.cli_evaluate`), checking in between
    parser = HarnessCLI()
    args = parser.parse_args()
    _check_before_running(args)
    parser.execute(args)


def _check_before_running(args: argparse.Namespace) -> None:
    """`--model itdd`'s model args and a --device the user named, checked before lm-eval indexes its
    tasks (about half a minute) and before the model loads: a mistake costs a second, not a run."""
    from lm_eval.config.evaluate_config import EvaluatorConfig

    if getattr(args, "command", None) != "run":
        return
    try:
        config = EvaluatorConfig.load_yaml_config(args.config) if getattr(args, "config", None) else {}
    except Exception:  # lm-eval reports an unreadable --config in its own words
        return
    given = config | {key: value for key, value in vars(args).items() if value or value == 0}  # flags over YAML
    if given.get("model") != "itdd":
        return
    model_args = given.get("model_args") or {}
    args_given = simple_parse_args_string(model_args) if isinstance(model_args, str) else model_args
    own = parse_model_args(args_given)
    if given.get("device") is not None:
        check_named_device(str(given["device"]), own.device)
    if own.mc_log is not None:  # what lm-eval reads: its --config, task paths and --include_path directories
        tasks = given.get("tasks") or []
        names = [str(given[key]) for key in ("config", "include_path") if given.get(key)] + [
            name.strip() for item in ([tasks] if isinstance(tasks, str) else tasks) for name in str(item).split(",")]
        check_not_input("model_args mc_log", own.mc_log, [name for name in names if Path(name).exists()])


register()
