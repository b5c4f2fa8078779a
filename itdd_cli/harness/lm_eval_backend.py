"""The lm-evaluation-harness model backend `itdd` (`--model itdd`).

lm-eval 0.4.13 finds outside backends only if they are registered before it looks them up, so
`itdd lm-eval …` (lm_eval_cli) registers this class by name; newer releases find it through the
`lm_eval.models` entry point. `simple_evaluate(model=ItddLM(pretrained=…))` works with any release.

Every request is scored by the runner's `score`, the CLI's own path, as the record the matching
command reads:

- `loglikelihood`: the trailing whitespace of a context moves to the front of its continuation
  (lm-eval's boundary convention); requests of one question (same task, document and context)
  are one `itdd choice` record, so the k answers share their draws and their numbers equal
  `itdd choice` on the same prompt and choices — duplicate choices included, each scored as its
  own choice (lm-eval picks the first of equal log-likelihoods, as `itdd choice` does). A lone
  continuation is an `itdd cond-nll` record. `is_greedy` is always False: itdd scores, it never
  decodes, so it cannot say which continuation greedy decoding would produce.
- `loglikelihood_rolling`: `itdd nll` of the whole document; with the model args long=rolling
  (and context=N) a document longer than the model's window is scored in windows as
  `itdd nll --long rolling --context N`, else it is an error naming the request.
- `generate_until`: an error — itdd scores text, it does not generate.

Each request's Monte Carlo standard error is kept (`last_results`, and `mc_log=PATH` writes them
as JSONL), a summary says how many questions are undecided at this budget, and per task the
summary goes into lm-eval's results JSON (`get_model_info`). This module knows lm-eval's `LM`
contract and reads rows; it never touches draws, so it works for every kind of model the runner does.
"""

from __future__ import annotations

import atexit
import logging
from dataclasses import replace
from typing import Any

import lm_eval.models  # noqa: F401  (registers lm-eval's own backends before ours)
import torch
from lm_eval.api.instance import Instance
from lm_eval.api.model import LM
from lm_eval.api.registry import model_registry
from lm_eval.utils import simple_parse_args_string

from itdd_cli.core import checks
from itdd_cli.core.processes import launched
from itdd_cli.core.windows import Long
from itdd_cli.errors import InputError, UsageError
from itdd_cli.harness.api import Scorer
from itdd_cli.harness.lm_eval_args import harness_device, parse_model_args
from itdd_cli.harness.lm_eval_requests import (
    Question,
    RequestError,
    RequestResult,
    RowsBar,
    advice,
    describe,
    multi_all,
    request_object,
    row_results,
    split_boundary,
)  # fmt: skip
from itdd_cli.harness.mc_log import McLog, check_path
from itdd_cli.io.records import Fields
from itdd_cli.results.rows import FIXED_PROTOCOL_DRAWS, UNDECIDED_SE, Command
from itdd_cli.run.parallel import close_shard, current_shard
from itdd_cli.run.session import run_settings
from itdd_cli.scoring.runner import Lossy, check_guidance, check_long, score

logger = logging.getLogger("lm_eval.itdd")  # under lm-eval's logger, so its handler prints it


class ItddLM(LM):
    """I-MDCE Monte Carlo log-likelihoods of a masked-diffusion LM, behind lm-eval's `LM` contract.

    Model args: pretrained (hub id, directory or bundled name; default 'demo'), samples (draws per
    question, default 128), estimator, seed, independent, max_tokens, dtype, device, family,
    tokenizer, revision, trust_remote_code, chat_template (wrap the context as a user turn),
    mc_log (a JSONL path for per-request standard errors), until_decided and max_samples (draw each
    question in rounds until its pick is decided, as `itdd choice --until-decided`), long and context
    (`--long rolling --context N` for loglikelihood_rolling), each checked as its CLI option is
    (`lm_eval_args`) before the model loads. `batch_size` is itdd's forward rows per batch; 1
    (lm-eval's default), 'auto' and 'auto:N' fill batches up to max_tokens.
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
                                  chat_template=args.chat_template, base=args.base, merge=args.merge,
                                  cfg=args.cfg)  # fmt: skip
        if args.until_decided is not None:
            self.scorer = self.scorer.with_settings(until_decided=args.until_decided, max_samples=args.max_samples)
        self._rolling = replace(self.scorer.settings, long=Long(args.long), context=args.context, target_se=None,
                                until_decided=None, max_samples=None)  # nothing to decide in one document
        try:
            check_long(self.scorer.model, self._rolling)
        except UsageError as error:
            raise UsageError(str(error).replace("--context", "model_args context")) from None
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
        questions: dict[tuple[Any, ...], Question] = {}
        slots = []
        for index, request in enumerate(requests):
            context, continuation = split_boundary(*request.args)
            key = (request.task_name, request.doc_id, context)
            question = questions.setdefault(key, Question(context, first_request=index))
            slots.append((key, question.add(request.idx, continuation)))
        order = list(questions)
        scored = dict(zip(order, self._score(requests, [questions[key] for key in order], False, disable_tqdm),
                          strict=True))  # fmt: skip
        self.last_results = [scored[key][choice] for key, choice in slots]
        self._report(requests, list(scored.values()), [str(key[0]) for key in order], rolling=False)
        return [(result.loglik, False) for result in self.last_results]

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        """log p(document) per request, as `itdd nll` (with model args long=rolling, `--long rolling`)."""
        checks.guidance("nll", self.scorer.settings.cfg, lambda name: f"model_args {name}")  # no prompt to guide by
        questions = [Question("", [request.args[0]], index) for index, request in enumerate(requests)]
        self.last_results = [results[0] for results in self._score(requests, questions, True, disable_tqdm)]
        self._report(requests, [[result] for result in self.last_results], [str(r.task_name) for r in requests],
                     rolling=True)  # fmt: skip
        return [result.loglik for result in self.last_results]

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        tasks = sorted({str(request.task_name) for request in requests})
        raise RequestError(f"itdd scores text and does not generate: {', '.join(tasks)} need generate_until; "
                           "evaluate multiple-choice or perplexity tasks")  # fmt: skip

    def _score(
        self, requests: list[Instance], questions: list[Question], rolling: bool, quiet: bool
    ) -> list[list[RequestResult]]:
        """Each question scored by the runner as the CLI scores it: a whole document as `itdd nll`, a lone
        continuation as `itdd cond-nll`, several as one `itdd choice` record; one runner call per command."""
        if not rolling:
            check_guidance(Command.choice, self.scorer.model, self.scorer.settings)  # cfg: refused for block models
        groups: dict[Command, list[int]] = {}
        for number, question in enumerate(questions):
            several = len(question.continuations) > 1
            command = Command.nll if rolling else Command.choice if several else Command.cond_nll
            groups.setdefault(command, []).append(number)
        settings = self._rolling if rolling else replace(self.scorer.settings, long=Long.error)
        results: list[list[RequestResult]] = [[] for _ in questions]
        with RowsBar(quiet or self.rank != 0) as bar:
            for command, numbers in groups.items():
                objects = ((line, request_object(command, questions[number])) for line, number in enumerate(numbers, 1))
                rows = score(command, objects, self.scorer.model, settings, on_batch=bar.batch)
                try:
                    for number, row in zip(numbers, rows, strict=True):
                        if isinstance(row, Lossy):  # scored as the CLI scores it; the loss is said, not hidden
                            logger.warning(f"itdd: {describe(requests[questions[number].first_request])}: "
                                           f"{row.message}")  # fmt: skip
                            row = row.row
                        assert isinstance(row, dict)  # nothing is skipped: an invalid request raises
                        results[number] = row_results(row)
                except InputError as error:
                    request = requests[questions[numbers[error.line - 1]].first_request]
                    raise RequestError(f"{describe(request)}: {advice(error.message, rolling)}") from None
                bar.next_command()
        return results

    def _report(self, requests: list[Instance], questions: list[list[RequestResult]], tasks: list[str],
                rolling: bool) -> None:  # fmt: skip
        if not questions:
            return
        self._tally(questions, tasks, rolling)
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
        return record | {"command": "lm-eval", "fields": None, "long": args.long, "context": args.context}

    def _tally(self, questions: list[list[RequestResult]], tasks: list[str], rolling: bool) -> None:
        """Per task, running sums of the Monte Carlo summary (the results JSON's `itdd_monte_carlo`)."""
        for results, task in zip(questions, tasks, strict=True):
            sums = self.monte_carlo.setdefault(task, {"questions": 0, "requests": 0, "continuations": 0,
                                                       "se_sum": 0.0, "decided": 0, "adaptive": 0,
                                                       "forward_rows": 0})  # fmt: skip
            sums["questions"] += 1
            sums["requests"] += len(results)
            sums["continuations"] += 0 if rolling else len(results)  # the fixed protocol's unit
            sums["se_sum"] += sum(result.loglik_se for result in results)
            sums["forward_rows"] += results[0].passes
            if results[0].decided is not None:
                sums["adaptive"] += 1
                sums["decided"] += results[0].decided

    def get_model_info(self) -> dict[str, Any]:
        """What lm-eval adds to its results JSON (`config`): per task, the Monte Carlo summary — mean SE of a
        log-likelihood, the share of questions decided (until_decided; else null), forward rows in all and
        what LLaDA's fixed protocol (128 per continuation) would have spent (null for a perplexity task's
        documents: the protocol is for continuations). This process's questions only."""
        settings = self.scorer.settings
        tasks = {
            task: {
                "questions": int(sums["questions"]),
                "mean_loglik_se": sums["se_sum"] / sums["requests"],
                "share_decided": sums["decided"] / sums["adaptive"] if sums["adaptive"] else None,
                "forward_rows": int(sums["forward_rows"]),
                "fixed_protocol_rows": FIXED_PROTOCOL_DRAWS * int(sums["continuations"]) or None,
            }
            for task, sums in self.monte_carlo.items()
        }
        return {"itdd_monte_carlo": {"estimator": settings.estimator.value, "samples": settings.samples,
                                     "until_decided": settings.until_decided,
                                     "max_samples": settings.cap if settings.adaptive else None,
                                     "seed": settings.seed, "long": self._rolling.long.value,
                                     "context": self._rolling.context, "cfg": settings.cfg,
                                     "tasks": tasks}}  # fmt: skip

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

    def gatherrequest_object(self, obj: Any, dst: int = 0) -> list[Any] | None:
        if self.world_size <= 1:
            return [obj]
        import torch.distributed as dist

        gathered = [None] * self.world_size if self.rank == dst else None
        dist.gatherrequest_object(obj, gathered, dst=dst)
        return gathered

    def barrier(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()


def register() -> None:
    """Make `--model itdd` known to lm-eval (a no-op where an entry point already named it)."""
    if "itdd" not in model_registry:
        model_registry.register("itdd", target=ItddLM)


register()
