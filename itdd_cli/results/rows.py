"""What each command's output row holds, declared once.

A `RowSpec` names a command's fields in output order with their types, the fields that identify
a row's input on --resume, the metric `itdd compare` uses by default, what the closing summary
tallies and which metrics a quality gate may test. The writers, the result reader, resume,
compare, the summary and the table read these declarations; the runner fills them in.

Adding a command: one `RowSpec` here (with its record parser) and its row function in the runner.
This module imports no torch and renders nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from itdd_cli.io.records import Fields, Record, choice_record, conditional_record, pair_record, text_record

UNDECIDED_SE = 2.0  # a choice whose margin is within this many SE could flip at this budget


class Command(StrEnum):
    nll = "nll"
    cond_nll = "cond-nll"
    ratio = "ratio"
    choice = "choice"


@dataclass(frozen=True)
class Field:
    """One output column. `worse` says which direction of a change `compare` calls worse
    (None: not a comparable metric); `se` names the field holding this one's standard error;
    `rank` is its importance in a table: when a terminal is too narrow for every column, the
    highest ranks are left out first (1: always shown)."""

    name: str
    kind: type  # int, float, str, bool or list (a list of numbers, one per choice; a JSON array in CSV)
    worse: str | None = None  # "higher" or "lower"
    se: str | None = None
    rank: int = 4


@dataclass(frozen=True)
class Tally:
    """A summary metric: the mean of `value(row)` over the rows `over` admits (all by default);
    `binomial` adds `<name>_se`."""

    name: str
    value: Callable[[dict[str, Any]], float]
    binomial: bool = False
    line: str | None = None  # the summary line: fields `value`, `se` (text: a share or n/a), `rows`, `coupling`
    over: Callable[[dict[str, Any]], bool] | None = None


@dataclass(frozen=True)
class RowSpec:
    command: Command
    fields: tuple[Field, ...]
    parse: Callable[[dict[str, Any], int, Fields], Record]
    identity: tuple[str, ...]  # token counts recomputed from the input on --resume, one per scored text (or a list)
    nll_fields: tuple[str, ...]  # summed into the summary's NLL
    compare_metric: str
    tallies: tuple[Tally, ...] = ()
    nll_sign: int = 1  # -1: nll_fields hold log-likelihoods
    per_token: tuple[Field, ...] = ()  # appended to every row under --per-token (empty: the command has none)
    rows_per_draw: int = 1  # forward rows each draw costs: 2 under --cfg (a row and its unconditional twin)
    inputs: tuple[str, ...] = ("id", "keep")  # the `Fields` it reads (its --*-field options, --keep)
    rolls: bool = False  # one text, no prompt: --long rolling windows and --context apply

    @property
    def prompted(self) -> bool:
        """Whether a record may have a prompt (so --keep-boundary applies)."""
        return "prompt" in self.inputs

    @property
    def several_texts(self) -> bool:
        """Whether a record scores several texts (whose draws are coupled unless --independent)."""
        first = self.field(self.identity[0])
        return len(self.identity) > 1 or (first is not None and first.kind is list)

    def tokens_of(self, row: dict[str, Any]) -> int:
        return sum(_total(row[name]) for name in self.identity)

    def nll_of(self, row: dict[str, Any]) -> float:
        return self.nll_sign * sum(_total(row[name]) for name in self.nll_fields)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(field.name for field in self.fields)

    @property
    def measures_text(self) -> bool:
        """Whether rows carry the scored text's bytes and words (the tokenizer-free metrics)."""
        return self.field("words") is not None  # choice rows carry a list of bytes per choice, and no words

    def field(self, name: str) -> Field | None:
        return next((field for field in (*self.fields, *self.per_token) if field.name == name), None)

    def row(self, **values: Any) -> dict[str, Any]:
        """The row in declared order (with the per-token fields when given); a missing or undeclared
        field is a bug, caught here."""
        names = self.names
        if len(values) > len(names):
            names += tuple(field.name for field in self.per_token)
        if set(values) != set(names):
            raise AssertionError(f"{self.command} row fields {sorted(values)} differ from {names}")
        return {name: values[name] for name in names}


def _total(value: Any) -> Any:
    return sum(value) if isinstance(value, list) else value


def _labelled(row: dict[str, Any]) -> bool:
    return row["correct"] is not None


def _adaptive(row: dict[str, Any]) -> bool:
    return row["decided"] is not None


# LLaDA's likelihood protocol draws this many masks per choice for every question (the summary's yardstick).
FIXED_PROTOCOL_DRAWS = 128


def undecided(row: dict[str, Any]) -> bool:
    """A choice that more draws could flip: its margin is within UNDECIDED_SE standard errors."""
    return row["margin"] <= UNDECIDED_SE * row["margin_se"]


ID = Field("id", str, rank=1)
_NLL = (
    Field("nll", float, worse="higher", se="nll_se", rank=1),
    Field("nll_se", float, rank=2),
    Field("tokens", int, rank=3),
)
_PER_TOKEN = (
    Field("nll_per_token", float, worse="higher", rank=2),
    Field("bits_per_token", float, worse="higher", rank=6),
    Field("ppl", float, worse="higher", rank=5),
    Field("samples", int, rank=8),
)
# Tokenizer-free measures of the scored text, comparable across tokenizers (LLaDA, Dream, MDLM):
# its UTF-8 bytes, its whitespace-separated words (as lm-eval's wikitext task counts them) and
# nll / (ln 2 · bytes). The summary sums bytes and words into corpus bits per byte and word perplexity.
_PER_BYTE = (
    Field("bytes", int, rank=6),
    Field("words", int, rank=7),
    Field("bits_per_byte", float, worse="higher", rank=3),
)


# --per-token: the scored text's pieces, one per token (they concatenate to the text where the
# tokenizer reports offsets), each token's share of `nll` in nats (they sum to `nll`) and that share's
# Monte Carlo SE (estimators.positions); JSON arrays in CSV. `itdd show` renders them.
TOKEN_FIELDS = (Field("token_strings", list, rank=9), Field("token_nll", list, rank=9),
                Field("token_nll_se", list, rank=9))  # fmt: skip


SPECS: dict[Command, RowSpec] = {
    spec.command: spec
    for spec in [
        RowSpec(
            Command.nll,
            # windows (see --long rolling) is 1 unless texts roll: the first column a narrow table leaves out
            (ID, *_NLL, *_PER_TOKEN, Field("windows", int, rank=9), *_PER_BYTE),
            text_record,
            identity=("tokens",),
            nll_fields=("nll",),
            compare_metric="nll_per_token",
            per_token=TOKEN_FIELDS,
            inputs=("id", "text", "keep"),
            rolls=True,
        ),
        RowSpec(
            Command.cond_nll,
            (ID, *_NLL, Field("prompt_tokens", int, rank=4), *_PER_TOKEN, *_PER_BYTE),
            conditional_record,
            identity=("tokens",),
            nll_fields=("nll",),
            compare_metric="nll_per_token",
            per_token=TOKEN_FIELDS,
            inputs=("id", "prompt", "response", "keep"),
        ),
        RowSpec(
            Command.ratio,
            (
                ID,
                Field("log_ratio", float, worse="lower", se="log_ratio_se", rank=1),
                Field("log_ratio_se", float, rank=2),
                Field("nll_chosen", float, worse="higher", rank=3),
                Field("nll_rejected", float, worse="higher", rank=3),
                Field("tokens_chosen", int, rank=5),
                Field("tokens_rejected", int, rank=5),
                Field("samples", int, rank=7),
                Field("prefers", str, rank=1),
                Field("decided", bool, rank=8),  # --until-decided: the anytime-valid rule decided (else null)
            ),
            pair_record,
            identity=("tokens_chosen", "tokens_rejected"),
            nll_fields=("nll_chosen", "nll_rejected"),
            compare_metric="log_ratio",
            inputs=("id", "prompt", "chosen", "rejected", "keep"),
            tallies=(
                Tally(
                    "share_chosen",
                    lambda row: float(row["prefers"] == "chosen"),
                    binomial=True,
                    line="prefers chosen {value:.1%} of pairs ({coupling} masks)",
                ),
                Tally("mean_log_ratio", lambda row: row["log_ratio"]),
                Tally("decided", lambda row: float(row["decided"]), over=_adaptive,
                      line="{value:.1%} of pairs decided (--until-decided)"),  # fmt: skip
            ),
        ),
        RowSpec(
            Command.choice,
            (
                ID,
                Field("pred", int, rank=1),
                Field("pred_norm", int, rank=3),
                Field("label", int, rank=1),  # the right choice's index, from the record (null without one)
                Field("logliks", list, rank=4),  # one number per choice: wide, so after the scalars
                Field("logliks_se", list, rank=5),
                Field("margin", float, se="margin_se", rank=2),
                Field("margin_se", float, rank=2),
                Field("tokens", list, rank=6),
                Field("bytes", list, rank=7),
                Field("correct", bool, worse="lower", rank=1),
                Field("correct_norm", bool, worse="lower", rank=3),
                Field("samples", int, rank=8),  # per choice still in contention at the end, pilot included
                Field("decided", bool, rank=8),  # --until-decided: one choice left in contention (else null)
                Field("passes", int, rank=9),  # forward passes of every choice together (forward rows)
            ),
            choice_record,
            identity=("tokens",),
            nll_fields=("logliks",),
            nll_sign=-1,
            compare_metric="correct",
            inputs=("id", "prompt", "choices", "label", "keep"),
            tallies=(
                Tally("accuracy", lambda row: float(row["correct"]), binomial=True, over=_labelled,
                      line="accuracy {value:.1%} ± {se} over {rows} labelled records"),
                Tally("accuracy_norm", lambda row: float(row["correct_norm"]), binomial=True, over=_labelled,
                      line="acc_norm (per byte) {value:.1%} ± {se}"),
                Tally("undecided", lambda row: float(undecided(row)),
                      line="{value:.1%} undecided: margin within 2 SE ({coupling} draws)"),
                Tally("decided", lambda row: float(row["decided"]), over=_adaptive,
                      line="{value:.1%} decided by the anytime-valid rule (--until-decided)"),
                Tally("passes_per_record", lambda row: row["passes"], over=_adaptive,
                      line="{value:.1f} forward rows (passes) per question"),
                Tally("fixed_protocol_passes", lambda row: FIXED_PROTOCOL_DRAWS * len(row["tokens"]), over=_adaptive,
                      line="{value:.1f} per question under LLaDA's fixed protocol (128 per choice)"),
            ),  # fmt: skip
        ),
    ]
}

# --cfg S > 0: the scores are guided (LLaDA's classifier-free guidance), not log-likelihoods, so the
# fields holding them carry this prefix; every other field keeps its name and meaning.
GUIDED = "guided_"
GUIDED_FIELDS = frozenset({"nll", "nll_se", "nll_per_token", "bits_per_token", "ppl", "bits_per_byte",
                           "log_ratio", "log_ratio_se", "nll_chosen", "nll_rejected", "logliks", "logliks_se",
                           "token_nll"})  # fmt: skip


def guided_name(name: str) -> str:
    return GUIDED + name if name in GUIDED_FIELDS else name


def unguided(row: dict[str, Any]) -> dict[str, Any]:
    """A guided row under its plain names (what readers of the plain rows, like `itdd show`, expect)."""
    return {name.removeprefix(GUIDED) if name.removeprefix(GUIDED) in GUIDED_FIELDS else name: value
            for name, value in row.items()}  # fmt: skip


def _read_unguided(read: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
    return lambda row: read(unguided(row))


def _guided(spec: RowSpec) -> RowSpec:
    """A command's row under --cfg: the score fields renamed (`guided_name`); two forward rows a draw."""
    def fields(declared: tuple[Field, ...]) -> tuple[Field, ...]:
        return tuple(replace(f, name=guided_name(f.name), se=f.se and guided_name(f.se)) for f in declared)

    tallies = tuple(replace(t, value=_read_unguided(t.value), over=t.over and _read_unguided(t.over))
                    for t in spec.tallies)  # fmt: skip
    return replace(spec, fields=fields(spec.fields), per_token=fields(spec.per_token), tallies=tallies,
                   nll_fields=tuple(map(guided_name, spec.nll_fields)), compare_metric=guided_name(spec.compare_metric),
                   rows_per_draw=2)  # fmt: skip


# The commands that take --cfg (a prompt to guide by): nll has none.
GUIDED_SPECS: dict[Command, RowSpec] = {command: _guided(SPECS[command])
                                        for command in (Command.cond_nll, Command.ratio, Command.choice)}  # fmt: skip


def spec_for(command: Command, guided: bool = False) -> RowSpec:
    """The row `command` writes, guided (--cfg > 0) or not."""
    return GUIDED_SPECS[command] if guided else SPECS[command]


def all_specs() -> list[RowSpec]:
    """Every row a result file may hold, guided ones included."""
    return [*SPECS.values(), *GUIDED_SPECS.values()]


# Metrics every run's summary reports, in the order the summary and the gates list them.
RUN_METRICS = ("records", "skipped", "lossy", "tokens", "passes", "nll_per_token", "bits_per_token", "perplexity",
               "wall_seconds")  # fmt: skip
# Reported by the commands whose rows carry `bytes` and `words` (one scored text per row).
TEXT_METRICS = ("bytes", "words", "bits_per_byte", "word_perplexity")


def tally_names(spec: RowSpec) -> list[str]:
    return [name for tally in spec.tallies for name in (tally.name, *((f"{tally.name}_se",) if tally.binomial else ()))]


# The summary's metrics that sum the scores: under --cfg they take the guided prefix too.
GUIDED_METRICS = frozenset({"nll_per_token", "bits_per_token", "perplexity", "bits_per_byte", "word_perplexity"})


def guided_metric(name: str) -> str:
    return GUIDED + name if name in GUIDED_METRICS else name


def gate_metrics() -> list[str]:
    """Every metric a gate may name, whatever the command (guided ones under --cfg included)."""
    names = list(RUN_METRICS) + list(TEXT_METRICS)
    for spec in SPECS.values():
        names += [name for name in tally_names(spec) if name not in names]
    return names + [guided_metric(name) for name in names if name in GUIDED_METRICS]


def spec_of_columns(columns: set[str]) -> RowSpec | None:
    """The command whose rows these columns hold (a result file's header), the most specific one."""
    matches = [spec for spec in all_specs() if set(spec.names) <= columns]
    return max(matches, key=lambda spec: len(spec.fields), default=None)


def comparable(spec: RowSpec | None = None) -> dict[str, Field]:
    """Fields `compare` may compare (of one command, or of all)."""
    specs = [spec] if spec else all_specs()
    return {field.name: field for s in specs for field in s.fields if field.worse}
