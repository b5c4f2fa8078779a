"""A record's draws: the noise of each round, the jobs the engine runs, the tallies it fills,
and the rounds of --target-se / --until-decided.

Every round of a record draws from a generator seeded by (seed, its token ids, the round), and
how many passes the next round takes depends only on the record's own results, so a record's
numbers are the same whatever the batch size, the input order, the process count or the round
in which its neighbours stopped. Knows nothing about rows, files or a family's quirks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import torch

from itdd_cli.core.settings import Settings
from itdd_cli.estimators import (
    PILOT_STREAM,
    Estimate,
    Noise,
    PositionTally,
    RoundPlan,
    Tally,
    draw_noise,
    pilot_keys,
    plan_round,
    record_generator,
    round_shape,
    round_stream,
    summarise,
)
from itdd_cli.estimators.chain_rule import MIN_ORDERS
from itdd_cli.estimators.coupling import key_columns
from itdd_cli.estimators.decisions import Rule, Spending, contenders, planned_passes
from itdd_cli.estimators.levels import alpha_of
from itdd_cli.models.base import Framed
from itdd_cli.scoring.engine import Engine, Job

Item = TypeVar("Item")


@dataclass
class RecordDraws:
    """All sides of one record (one, or chosen and rejected) and their tallies so far."""

    context: list[int]
    framed: list[Framed]
    settings: Settings
    tag: tuple[int, ...] = ()  # added to the noise seed when set (a block's index); empty: unchanged draws
    shape_lengths: list[int] | None = None  # set: Monte Carlo rounds shaped by these lengths (a block record's
    # blocks under --until-decided share one shape, so their draws line up by index; blocks.py)
    min_orders: int = MIN_ORDERS  # fewest whole orders the chain rule draws (a block: chain_rule.BLOCK_ORDERS)
    tallies: list[Tally] = field(default_factory=list)
    plans: list[RoundPlan] = field(default_factory=list)
    round: int = 0
    capped: bool = False
    active: list[bool] = field(default_factory=list)  # sides still drawing (--until-decided puts losers out)
    decided: bool | None = None  # --until-decided on several sides: whether one side is left; None otherwise

    def __post_init__(self) -> None:
        per_token = self.settings.per_token
        self.tallies = [Tally(self.settings.estimator, positions=PositionTally() if per_token else None)
                        for _ in self.framed]  # fmt: skip
        self.active = [True] * len(self.framed)
        if self.deciding:
            self.decided = False
        self.plans = self._plan(self.settings.samples)

    @property
    def deciding(self) -> bool:
        """Whether rounds run until one side is decided (--until-decided with several sides)."""
        return self.settings.until_decided is not None and self.settings.adaptive and len(self.framed) > 1

    @property
    def passes(self) -> int:
        """Forward passes per side so far (pilot included); the longer side's for a pair."""
        return max(tally.passes for tally in self.tallies)

    @property
    def forward_rows(self) -> int:
        """Forward passes of every side together (sides put out of contention stopped drawing)."""
        return sum(tally.passes for tally in self.tallies)

    def jobs(self) -> list[Job]:
        return [
            Job(torch.tensor(f.ids, dtype=torch.long), f.start, plan.masks, plan.scored)
            for f, plan, active in zip(self.framed, self.plans, self.active, strict=True)
            if active
        ]

    def absorb(self, losses: list[torch.Tensor]) -> None:
        """One round's losses, one tensor per side still in contention (as `jobs` listed them)."""
        drawing = [(tally, plan) for tally, plan, active in zip(self.tallies, self.plans, self.active, strict=True)
                   if active]  # fmt: skip
        for (tally, plan), side_losses in zip(drawing, losses, strict=True):
            tally.add(plan, side_losses)

    def estimates(self) -> list[Estimate]:
        return [tally.estimate() for tally in self.tallies]

    def contributions(self) -> list[torch.Tensor]:
        """Per side, each scored token's share of its estimate (L,); needs Settings.per_token."""
        return [tally.contributions() for tally in self.tallies]

    def contribution_errors(self) -> list[torch.Tensor]:
        """Per side, each share's standard error (L,)."""
        return [tally.contribution_errors() for tally in self.tallies]

    def difference(self, first: int = 0, second: int = 1) -> Estimate:
        """side `second` − side `first` (rejected − chosen); paired by index so the SE sees the coupling.
        A side put out of contention drew the first rounds only: those are paired."""
        one, other = self.tallies[first], self.tallies[second]
        if self.framed[first] == self.framed[second] and not self.settings.independent:  # same draws, same values
            return Estimate(0.0, 0.0)
        a, b = one.all_values(), other.all_values()
        groups = (one if len(a) <= len(b) else other).all_groups()
        if groups is None:  # exact sums: no error, and the sides may enumerate different counts
            return Estimate(other.estimate().value - one.estimate().value, 0.0)
        shared = len(groups)
        return summarise(b[:shared] - a[:shared], groups, scale=not one.orders)

    def watched(self) -> Estimate:
        return self.difference() if len(self.tallies) == 2 else self.estimates()[0]

    def next_round(self) -> bool:
        """Plan another round if the record is not yet precise (or decided) enough; False: done."""
        if self.deciding:
            return self._next_look()
        settings = self.settings
        if all(tally.exact for tally in self.tallies):  # enumerated: nothing left to draw
            return False
        size = target_round(settings, self.passes, self.watched().se)
        if size is None:
            self.capped = settings.target_se is not None and not settings.reached(self.watched().se)
            return False
        self.plan_more(size, spend_all=size == settings.cap - self.passes)
        return True

    def plan_more(self, size: int, spend_all: bool) -> None:
        """Plan the next round: `size` passes per side (`spend_all`: the round that reaches the cap)."""
        self.round += 1
        self.plans = self._plan(size, spend_all=spend_all)

    def _next_look(self) -> bool:
        """--until-decided: put out the sides another beats at this look's level; draw the next
        planned round for the rest unless one is left (decided), the SE goal is met or the cap is spent."""
        settings = self.settings
        if all(tally.exact for tally in self.tallies):  # enumerated: every log-likelihood, so the pick, is exact
            self.decided = True
            return False
        looks = planned_passes(settings.samples, settings.cap)
        inside = [i for i, active in enumerate(self.active) if active]
        strata = self.tallies[inside[0]].all_strata()
        assert strata is not None, "Monte Carlo draws have strata"
        values = [tally.all_values() for tally in self.tallies]
        self.active = contenders(values, strata, self.active, decision_rule(settings), self.round, len(looks))
        self.decided = sum(self.active) == 1
        if self.decided or (settings.target_se is not None and settings.reached(self.watched().se)):
            return False
        size = look_round(settings, self.round, self.passes)
        if size is None:
            self.capped = True
            return False
        self.plan_more(size, spend_all=size == settings.cap - self.passes)
        return True

    def _plan(self, passes: int, spend_all: bool = False) -> list[RoundPlan]:
        settings = self.settings
        lengths = [f.length for f in self.framed]
        first, fewest = self.round == 0, self.min_orders
        shape = round_shape(settings.estimator, passes, lengths, first, spend_all, fewest)
        if self.shape_lengths is not None and not shape.exhaustive:
            shape = round_shape(settings.estimator, passes, self.shape_lengths, first, spend_all, fewest)
        if shape.exhaustive:  # every masked set, no noise
            noises, keys = [None] * len(self.framed), [None] * len(self.framed)
        else:
            noises, keys = self._noise(shape.draws, shape.levels)
        return [
            plan_round(settings.estimator, f.length, shape, noise, key)
            for f, noise, key in zip(self.framed, noises, keys, strict=True)
        ]

    def _noise(self, draws: int, levels: int) -> tuple[list[Noise | None], list[torch.Tensor | None]]:
        settings, sides = self.settings, len(self.framed)
        if not settings.estimator.monte_carlo:
            return [None] * sides, [None] * sides
        stream = round_stream(self.round)
        tag = [list(self.tag)] if self.tag else []
        if sides == 1 or settings.independent:
            return self._alone(range(sides), draws, levels)
        # coupled: one u, keys and pilot shared through an alignment of the sides' token ids
        scored = [f.ids[f.start : f.start + f.length] for f in self.framed]
        seeds = (settings.seed, self.context, *scored)
        columns, key_count = key_columns(scored)
        noise = draw_noise(draws, key_count, record_generator(*seeds, *stream, *tag))
        pilot = pilot_keys(levels, key_count, record_generator(*seeds, *PILOT_STREAM, *tag))
        alone_noises, alone_pilots = map(
            iter, self._alone([s for s, own in enumerate(columns) if own is None], draws, levels, copies_tie=True)
        )
        noises: list[Noise | None] = []
        pilots: list[torch.Tensor | None] = []
        for own in columns:
            if own is None:  # shares too little with the reference: its own draws
                side_noise, side_pilot = next(alone_noises), next(alone_pilots)
            else:
                side_noise, side_pilot = Noise(noise.u, noise.keys[:, own], noise.strata), pilot[:, own]
            noises.append(side_noise)
            pilots.append(side_pilot if levels else None)
        return noises, pilots

    def _alone(
        self, sides: Iterable[int], draws: int, levels: int, copies_tie: bool = False
    ) -> tuple[list[Noise | None], list[torch.Tensor | None]]:
        """Independent noise for each of `sides`, seeded by the side's own ids and index. With
        `copies_tie` (coupled draws), a side equal to an earlier one (a duplicate choice) is seeded
        as that one, so equal texts get equal numbers, as they do when they share the reference's keys."""
        stream = round_stream(self.round)
        tag = [list(self.tag)] if self.tag else []
        noises: list[Noise | None] = []
        pilots: list[torch.Tensor | None] = []
        first: dict[tuple[tuple[int, ...], int], int] = {}
        for side in sides:
            f = self.framed[side]
            seeded_as = first.setdefault((tuple(f.ids), f.start), side) if copies_tie else side
            identity = (f.ids, [f.start, seeded_as])
            noises.append(draw_noise(draws, f.length, record_generator(self.settings.seed, *identity, *stream, *tag)))
            pilot = pilot_keys(levels, f.length, record_generator(self.settings.seed, *identity, *PILOT_STREAM, *tag))
            pilots.append(pilot if levels else None)
        return noises, pilots


def decision_rule(settings: Settings) -> Rule:
    """The stopping rule of --until-decided (anytime-valid alpha-spending; see estimators.decisions)."""
    assert settings.until_decided is not None
    return Spending(alpha_of(settings.until_decided))


def target_round(settings: Settings, passes: int, se: float) -> int | None:
    """Passes of the next --target-se round after `passes` per side at this SE; None: stop (goal met,
    no goal, or fewer than 2 passes left under the cap)."""
    if settings.target_se is None or settings.reached(se):
        return None
    left = settings.cap - passes
    if left < 2:
        return None
    size = min(left, max(_needed(passes, se, settings.target_se, left), settings.samples // 2, 2))
    return left if left - size == 1 else size  # never strand a single pass below the cap


def look_round(settings: Settings, look: int, passes: int) -> int | None:
    """Passes of --until-decided's next planned round after look `look` at `passes` per side; None: the
    looks or the cap are spent."""
    looks = planned_passes(settings.samples, settings.cap)
    left = settings.cap - passes
    if look + 1 >= len(looks) or left < 2:
        return None
    return min(max(looks[look + 1] - passes, 2), left)


def _needed(passes: int, se: float, goal: float, left: int) -> int:
    """Passes still missing for SE ≤ goal, from SE² ∝ 1/passes (10 % spare); `left` where that is
    beyond the cap — a goal as small as 1e-300 asks for more passes than a float holds."""
    if goal <= 0 or se / goal >= math.sqrt((passes + left) / (1.1 * passes)):
        return left
    return math.ceil(1.1 * passes * (se / goal) ** 2) - passes


def run_rounds(
    engine: Engine, items: Iterator[Item], draws_of: Callable[[Item], RecordDraws | None], adaptive: bool
) -> Iterator[Item]:
    """Score every item's rounds; yield the items in input order once finished (an item without
    draws, such as a skipped record, passes through).

    Without --target-se there is one round and records stream through the engine. With it,
    records are taken a window at a time and the unfinished ones go round again. If pulling the
    next item raises, the items already pulled are finished and yielded first.
    """

    def jobs(item: Item) -> list[Job]:
        draws = draws_of(item)
        return draws.jobs() if draws is not None else []

    if not adaptive:
        for item, losses in engine.run((item, jobs(item)) for item in items):
            draws = draws_of(item)
            if draws is not None:
                draws.absorb(losses)
            yield item
        return
    while True:
        window, error = _window(items, jobs, engine.window_rows)
        active = [draws for item in window if (draws := draws_of(item)) is not None]
        while active:
            for draws, losses in engine.run((draws, draws.jobs()) for draws in active):
                draws.absorb(losses)
            active = [draws for draws in active if draws.next_round()]
        yield from window
        if error is not None:
            raise error
        if not window:
            return


def _window(
    source: Iterator[Item], jobs: Callable[[Item], list[Job]], rows: int
) -> tuple[list[Item], Exception | None]:
    window: list[Item] = []
    count = 0
    try:
        while count < rows:
            item = next(source)
            window.append(item)
            count += max(1, sum(len(job.masks) for job in jobs(item)))
    except StopIteration:
        pass
    except Exception as error:  # an invalid record: finish what came before it, then raise
        return window, error
    return window, None
