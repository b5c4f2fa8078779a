"""Running totals of a scoring run, the JSON summary for CI, and quality gates on it."""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from itdd_cli.core.settings import LN2, Settings, safe_exp
from itdd_cli.errors import GateError, UsageError
from itdd_cli.results.rows import (
    RUN_METRICS,
    TEXT_METRICS,
    Command,
    RowSpec,
    gate_metrics,
    guided_metric,
    spec_for,
)
from itdd_cli.results.runrecord import guided_values, settings_values
from itdd_cli.version import __version__

if TYPE_CHECKING:
    from itdd_cli.models.base import ModelInfo

GATE_METRICS = gate_metrics()


@dataclass
class Summary:
    """Running totals for the closing summary; the session adds each row as it is written."""

    command: Command
    processes: int = 1  # data-parallel processes that scored the records
    guided: bool = False  # --cfg > 0: the NLL metrics are guided scores and say so in their names
    records: int = 0
    skipped: int = 0
    lossy: int = 0  # scored records whose text lost characters in tokenization
    tokens: int = 0
    passes: int = 0  # forward passes spent, every pilot pass and round included
    nll: float = 0.0
    bytes: int = 0
    words: int = 0
    tally_sums: dict[str, float] = field(default_factory=dict)
    tally_rows: dict[str, int] = field(default_factory=dict)  # rows each tally averages over
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None

    @property
    def spec(self) -> RowSpec:
        return spec_for(self.command, self.guided)

    def add(self, row: dict[str, Any]) -> None:
        spec = self.spec
        self.records += 1
        # per side, for each scored text; choice rows count every choice's passes themselves
        drawn = row["samples"] * row.get("windows", 1) * len(spec.identity) * spec.rows_per_draw  # --cfg: and twin
        self.passes += row["passes"] if spec.field("passes") else drawn
        self.tokens += spec.tokens_of(row)
        self.nll += spec.nll_of(row)
        if spec.measures_text:
            self.bytes += row["bytes"]
            self.words += row["words"]
        for tally in spec.tallies:
            if tally.over is None or tally.over(row):
                self.tally_sums[tally.name] = self.tally_sums.get(tally.name, 0.0) + tally.value(row)
                self.tally_rows[tally.name] = self.tally_rows.get(tally.name, 0) + 1

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
    def bits_per_byte(self) -> float:
        """Corpus bits per byte: total NLL over total UTF-8 bytes (not a mean of the rows' ratios)."""
        return self.nll / (LN2 * self.bytes) if self.bytes else math.nan

    @property
    def word_perplexity(self) -> float:
        """exp(total NLL / total whitespace-separated words), as lm-eval's wikitext task reports it."""
        return safe_exp(self.nll / self.words) if self.words else math.nan

    def text_metrics(self) -> dict[str, float]:
        """The tokenizer-free corpus metrics (counts as ints: the JSON summary writes them as integers);
        empty for a command whose rows do not measure text."""
        if not self.spec.measures_text:
            return {}
        numbers = {
            "bytes": self.bytes,
            "words": self.words,
            "bits_per_byte": self.bits_per_byte,
            "word_perplexity": self.word_perplexity,
        }
        assert tuple(numbers) == TEXT_METRICS
        return numbers

    def tallies(self) -> dict[str, float]:
        """Each tally's mean over rows (and the binomial SE of a share). One row gives no SE (NaN: "n/a"
        in the summary, null in JSON): √(p(1 − p)/1) is 0 whether the one answer was right or wrong,
        an error bar of nothing measured."""
        numbers: dict[str, float] = {}
        for tally in self.spec.tallies:
            rows = self.tally_rows.get(tally.name, 0)
            mean = self.tally_sums.get(tally.name, 0.0) / rows if rows else math.nan
            numbers[tally.name] = mean
            if tally.binomial:
                numbers[f"{tally.name}_se"] = math.sqrt(mean * (1 - mean) / rows) if rows > 1 else math.nan
        return numbers

    def metrics(self) -> dict[str, float]:
        """The numbers a CI gate can test (`--fail-above` / `--fail-below`); counts stay ints, so the JSON
        summary writes `"records": 3`, not `3.0`."""
        run = {
            "records": self.records,
            "skipped": self.skipped,
            "lossy": self.lossy,
            "tokens": self.tokens,
            "passes": self.passes,
            "nll_per_token": self.nll_per_token,
            "bits_per_token": self.nll_per_token / LN2,
            "perplexity": self.corpus_ppl,
            "wall_seconds": self.wall_seconds,
        }
        assert tuple(run) == RUN_METRICS
        metrics = run | self.text_metrics() | self.tallies()
        return {guided_metric(name): value for name, value in metrics.items()} if self.guided else metrics


# The settings a summary repeats, in its order (the settings record beside -o holds them all).
SUMMARY_SETTINGS = ("chat_template", "estimator", "samples", "seed", "long", "context", "coupled")


def summary_json(summary: Summary, info: ModelInfo, run: Settings, revision: str | None) -> dict[str, Any]:
    settings = settings_values(summary.spec, run)
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
    } | {key: settings[key] for key in SUMMARY_SETTINGS} | guided_values(run) | _finite(summary.metrics())



def _finite(metrics: dict[str, float]) -> dict[str, float | None]:
    return {key: (value if math.isfinite(value) else None) for key, value in metrics.items()}


@dataclass(frozen=True)
class Gate:
    metric: str
    limit: float
    above: bool  # True: fail when the metric is above the limit

    def violated(self, metrics: dict[str, float]) -> str | None:
        value = metrics.get(self.metric)
        if value is None:
            return f"{self.metric} is not reported by this command"
        if math.isnan(value):
            why = ("no records were scored" if not metrics.get("records") else
                   "a binomial standard error needs at least 2 records" if self.metric.endswith("_se") else
                   "no record it is taken over was scored")  # fmt: skip
            return f"{self.metric} is undefined: {why}"
        if value > self.limit if self.above else value < self.limit:
            return f"{self.metric} = {value:.6g} is {'above' if self.above else 'below'} {self.limit:g}"
        return None


PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[+-]?(?:nan|inf|infinity)",
                          re.IGNORECASE | re.ASCII)  # fmt: skip


def parse_gates(above: list[str], below: list[str]) -> list[Gate]:
    gates = []
    for specs, is_above, option in ((above, True, "--fail-above"), (below, False, "--fail-below")):
        for spec in specs:
            metric, _, number = spec.partition("=")
            if metric not in GATE_METRICS:
                raise UsageError(f"{option} {spec!r}: unknown metric; choose one of {', '.join(GATE_METRICS)}")
            if not PLAIN_NUMBER.fullmatch(number.strip()):  # float() also takes '1_0' and full-width digits
                raise UsageError(f"{option} {spec!r}: expected METRIC=NUMBER (e.g. {metric or 'nll_per_token'}=3.5)")
            limit = float(number)
            if not math.isfinite(limit):  # a NaN limit is never crossed: a gate that can never fail
                raise UsageError(f"{option} {spec!r}: the limit must be a finite number")
            gates.append(Gate(metric, limit, is_above))
    return gates


def check_gate_names(gates: list[Gate], command: Command, guided: bool) -> None:
    """Before scoring: every gate names a metric this command's summary reports (exit 2, not a failed gate)."""
    reported = Summary(command, guided=guided).metrics()
    for gate in gates:
        if gate.metric in reported:
            continue
        other = guided_metric(gate.metric) if guided else gate.metric.removeprefix("guided_")
        hint = f"; under {'--cfg' if guided else 'no --cfg'} it is {other}" if other in reported else ""
        raise UsageError(f"{gate.metric} is not a metric {command.value} reports{hint} (gates may name "
                         f"{', '.join(reported)})")


def check_gates(gates: list[Gate], summary: Summary) -> None:
    metrics = summary.metrics()
    failures = [message for gate in gates if (message := gate.violated(metrics))]
    if failures:
        raise GateError("quality gate failed: " + "; ".join(failures))
