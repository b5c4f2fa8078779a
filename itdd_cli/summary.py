"""Running totals of a scoring run, the JSON summary for CI, and quality gates on it."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

from itdd_cli import __version__
from itdd_cli.choice import ChoiceTally
from itdd_cli.errors import GateError, UsageError
from itdd_cli.models.base import ModelInfo
from itdd_cli.runner import Command, Settings, safe_exp

GATE_METRICS = ["records", "skipped", "tokens", "nll_per_token", "bits_per_token", "perplexity", "wall_seconds",
                "share_chosen", "share_chosen_se", "mean_log_ratio", "accuracy", "accuracy_se", "accuracy_norm",
                "accuracy_norm_se", "undecided"]  # fmt: skip


@dataclass
class Summary:
    """Running totals for the closing summary; the session adds each row as it is written."""

    command: Command
    records: int = 0
    skipped: int = 0
    tokens: int = 0
    nll: float = 0.0
    chosen: int = 0
    log_ratio: float = 0.0
    choice: ChoiceTally = field(default_factory=ChoiceTally)
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None

    def add(self, row: dict[str, Any]) -> None:
        self.records += 1
        if self.command is Command.ratio:
            self.tokens += row["tokens_chosen"] + row["tokens_rejected"]
            self.nll += row["nll_chosen"] + row["nll_rejected"]
            self.chosen += row["prefers"] == "chosen"
            self.log_ratio += row["log_ratio"]
        elif self.command is Command.choice:
            self.tokens += sum(row["tokens"])
            self.nll -= sum(row["logliks"])
            self.choice.add(row)
        else:
            self.tokens += row["tokens"]
            self.nll += row["nll"]

    @property
    def wall_seconds(self) -> float:
        return (self.finished or time.perf_counter()) - self.started

    @property
    def nll_per_token(self) -> float:
        return self.nll / self.tokens if self.tokens else math.nan

    @property
    def corpus_ppl(self) -> float:
        return safe_exp(self.nll_per_token)

    @property
    def share_chosen(self) -> float:
        return self.chosen / self.records if self.records else math.nan

    @property
    def share_chosen_se(self) -> float:
        """Binomial standard error of the share, over pairs."""
        share = self.share_chosen
        return math.sqrt(share * (1 - share) / self.records) if self.records else math.nan

    def metrics(self) -> dict[str, float]:
        """The numbers a CI gate can test (`--fail-above` / `--fail-below`)."""
        numbers = {
            "records": float(self.records),
            "skipped": float(self.skipped),
            "tokens": float(self.tokens),
            "nll_per_token": self.nll_per_token,
            "bits_per_token": self.nll_per_token / math.log(2),
            "perplexity": self.corpus_ppl,
            "wall_seconds": self.wall_seconds,
        }
        if self.command is Command.ratio:
            numbers["share_chosen"] = self.share_chosen
            numbers["share_chosen_se"] = self.share_chosen_se
            numbers["mean_log_ratio"] = self.log_ratio / self.records if self.records else math.nan
        if self.command is Command.choice:
            numbers |= self.choice.metrics()
        return numbers


def summary_json(summary: Summary, info: ModelInfo, settings: Settings, revision: str | None) -> dict[str, Any]:
    return {
        "tool": "itdd",
        "version": __version__,
        "command": summary.command.value,
        "model": info.name,
        "revision": revision,
        "family": info.family,
        "dtype": info.dtype,
        "device": info.device,
        "framing": info.framing,
        "chat_template": settings.chat_template,
        "estimator": settings.estimator.value,
        "samples": settings.samples,
        "seed": settings.seed,
        "coupled": not settings.independent if summary.command in (Command.ratio, Command.choice) else None,
    } | {key: (value if math.isfinite(value) else None) for key, value in summary.metrics().items()}


@dataclass(frozen=True)
class Gate:
    metric: str
    limit: float
    above: bool  # True: fail when the metric is above the limit

    def violated(self, metrics: dict[str, float]) -> str | None:
        value = metrics.get(self.metric)
        if value is None:
            return f"{self.metric} is not reported by this command"
        if math.isnan(value) or (value > self.limit if self.above else value < self.limit):
            return f"{self.metric} = {value:.6g} is {'above' if self.above else 'below'} {self.limit:g}"
        return None


def parse_gates(above: list[str], below: list[str]) -> list[Gate]:
    gates = []
    for specs, is_above, option in ((above, True, "--fail-above"), (below, False, "--fail-below")):
        for spec in specs:
            metric, _, number = spec.partition("=")
            if metric not in GATE_METRICS:
                raise UsageError(f"{option} {spec!r}: unknown metric; choose one of {', '.join(GATE_METRICS)}")
            try:
                gates.append(Gate(metric, float(number), is_above))
            except ValueError:
                raise UsageError(f"{option} {spec!r}: expected METRIC=NUMBER") from None
    return gates


def check_gates(gates: list[Gate], summary: Summary) -> None:
    metrics = summary.metrics()
    failures = [message for gate in gates if (message := gate.violated(metrics))]
    if failures:
        raise GateError("quality gate failed: " + "; ".join(failures))
