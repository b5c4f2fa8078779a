"""How a framed sequence is cut into the rows a block-diffusion model scores.

−log p(x) of a block model is Σ_b NELBO(x_b | x_<b): each block is its own masked-diffusion
problem, conditioned on the clean blocks before it, with later blocks absent. Blocks tile the
whole framed sequence from position 0, so a prompt may end inside a block: its tokens there
stay unmasked context, and only the block's scored tokens are drawn over. A model without
blocks is one span covering every scored token, and nothing changes for it.

A side of a record is scored in one [noisy ‖ clean] job (models/block.py): its row r carries the
r-th distinct draw of every block at once, each block masked by its own draw. A noisy block sees
only itself and the clean blocks before it, so the blocks of one row never see one another's
masks and each keeps its own draws, tally and numbers. Blocks draw the same count in Monte
Carlo rounds, but `exact` enumerates 2^L − 1 masks of an L-token block and short blocks repeat
masks (computed once), as does a short block whose masked sets all fit `--samples` under any
estimator (`rounds.round_shape`): a block with fewer distinct draws than the job has rows stays unmasked
and unscored in the remaining rows, which, seen by no other block, changes nothing.
The chain rule draws whole orders on a block only from `chain_rule.BLOCK_ORDERS` of them: fewer
give the block's SE too few degrees of freedom, where single steps get the small-round SE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from itdd_cli.core.settings import Settings
from itdd_cli.estimators import Estimate, RoundPlan, enumerable
from itdd_cli.estimators.chain_rule import BLOCK_ORDERS
from itdd_cli.estimators.decisions import contenders, planned_passes
from itdd_cli.models.base import Framed
from itdd_cli.scoring.draws import RecordDraws, decision_rule, look_round, target_round
from itdd_cli.scoring.engine import CleanCopy, Job


@dataclass(frozen=True)
class Span:
    """The scored tokens of one block: `ids[start:start + length]`, scored on `ids[:end]`."""

    block: int  # index on the block grid (0 for a model without blocks)
    end: int  # the row stops at the end of this block: later blocks are absent
    start: int
    length: int


def block_spans(framed: Framed, block_size: int | None) -> list[Span]:
    if block_size is None:
        return [Span(0, len(framed.ids), framed.start, framed.length)]
    spans = []
    position, stop = framed.start, framed.start + framed.length
    while position < stop:
        block = position // block_size
        block_end = min((block + 1) * block_size, stop)
        spans.append(Span(block, min((block + 1) * block_size, len(framed.ids)), position, block_end - position))
        position = block_end
    return spans


def total(estimates: list[Estimate]) -> Estimate:
    """Σ over blocks; blocks draw independently, so their variances add."""
    return Estimate(sum(e.value for e in estimates), math.sqrt(sum(e.se**2 for e in estimates)))


@dataclass(frozen=True)
class _Placed:
    """One block of one side inside that side's [noisy ‖ clean] job."""

    block: int  # index into BlockDraws.blocks
    member: int  # the side's place among the block's sides
    offset: int  # the job's columns before this block's (its first column is its first drawing block's)
    length: int
    slots: torch.Tensor  # (N,) long: the job row computing each draw; −1: nothing to score (loss 0)


def distinct_slots(masks: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(N,) long: each draw's slot among the distinct (mask, scored) pairs, in first-seen order;
    −1 for a draw with nothing to score. A repeated mask is computed once, as the engine would."""
    slots = torch.full((len(masks),), -1, dtype=torch.long)
    first: dict[bytes, int] = {}
    for d in targets.any(dim=1).nonzero().flatten().tolist():
        key = masks[d].numpy().tobytes() + targets[d].numpy().tobytes()
        slots[d] = first.setdefault(key, len(first))
    return slots


@dataclass
class BlockDraws:
    """A block model's record: each block is its own RecordDraws over the framed ids cut at the
    block's end, seeded with its block index. A block several sides have is one RecordDraws with
    those sides (coupled through their token alignment unless --independent); a block only one
    side has stands alone.

    Rounds (--target-se, --until-decided) add the same passes to every block still drawing (not
    enumerated): one [noisy ‖ clean] row carries a draw of every block, so a pass for one block costs
    the row a pass for all costs, and equal counts keep the blocks' draws lined up by index."""

    framed: list[Framed]  # the sides' full framed sequences
    blocks: list[tuple[list[int], RecordDraws]]  # (the sides present, in order; the block's draws)
    block_size: int
    settings: Settings
    placed: list[tuple[int, list[_Placed]]] = field(default_factory=list)  # (side, its blocks), set by `jobs`
    active: list[bool] = field(default_factory=list)  # sides still drawing (--until-decided puts losers out)
    drawing: list[bool] = field(default_factory=list)  # blocks drawing this round (enumerated ones stop)
    round: int = 0
    rows: int = 0  # forward rows run so far, every side together
    capped: bool = False
    decided: bool | None = None  # --until-decided on several sides: whether one side is left; None otherwise

    def __post_init__(self) -> None:
        self.active = [True] * len(self.framed)
        self.drawing = [True] * len(self.blocks)
        self.decided = False if self.deciding else None

    @classmethod
    def of(cls, context: list[int], framed: list[Framed], settings: Settings, block_size: int) -> BlockDraws:
        members: dict[int, list[tuple[int, Span]]] = {}
        for side, f in enumerate(framed):
            for span in block_spans(f, block_size):
                members.setdefault(span.block, []).append((side, span))
        lengths = {block: [span.length for _, span in spans] for block, spans in members.items()}
        shared = None
        if settings.until_decided is not None and settings.adaptive and len(framed) > 1:  # one shape: draws line up
            shared = [n for group in lengths.values() if not enumerable(group, settings.samples) for n in group]
        blocks = []
        for block in sorted(members):
            cut = [Framed(framed[side].ids[: span.end], span.start, span.length) for side, span in members[block]]
            sides = [side for side, _ in members[block]]
            blocks.append((sides, RecordDraws(context, cut, settings, tag=(block,), shape_lengths=shared,
                                              min_orders=BLOCK_ORDERS)))
        return cls(framed, blocks, block_size, settings)

    @property
    def deciding(self) -> bool:
        return self.settings.until_decided is not None and self.settings.adaptive and len(self.framed) > 1

    @property
    def passes(self) -> int:
        """Draws over all blocks, pilot included (each block draws its own)."""
        return sum(draws.passes for _, draws in self.blocks)

    @property
    def forward_rows(self) -> int:
        return self.rows

    def jobs(self) -> list[Job]:
        """One [noisy ‖ clean] job per side still drawing, its rows carrying every drawing block's distinct draws."""
        self.placed = []
        jobs = []
        for side, framed in enumerate(self.framed):
            placed, parts = [], []
            for k, (sides, draws) in enumerate(self.blocks):
                if side in sides and self.drawing[k] and self.active[side]:
                    member = sides.index(side)
                    cut, plan = draws.framed[member], draws.plans[member]
                    slots = distinct_slots(plan.masks, plan.masks if plan.scored is None else plan.scored)
                    begin = parts[0][0].start if parts else cut.start  # the job's columns start at its first block
                    placed.append(_Placed(k, member, cut.start - begin, cut.length, slots))
                    parts.append((cut, plan))
            if placed:
                self.placed.append((side, placed))
                jobs.append(self._job(framed, placed, parts))
        return jobs

    def _job(self, framed: Framed, placed: list[_Placed], parts: list[tuple[Framed, RoundPlan]]) -> Job:
        first, last = parts[0][0], parts[-1][0]
        width = last.start + last.length - first.start  # from the first drawing block to the last
        rows = max((int(p.slots.max()) + 1 for p in placed if len(p.slots)), default=0)
        masks = torch.zeros((rows, width), dtype=torch.bool)  # (R, L)
        # scored subsets of the masks (the chain rule); an enumerated block scores all it masks
        chain = any(plan.scored is not None for _, plan in parts)
        scored = torch.zeros((rows, width), dtype=torch.bool) if chain else None  # (R, L)
        for p, (_, plan) in zip(placed, parts, strict=True):
            draws = (p.slots >= 0).nonzero().flatten()
            columns = slice(p.offset, p.offset + p.length)
            masks[p.slots[draws], columns] = plan.masks[draws]
            if scored is not None:
                scored[p.slots[draws], columns] = (plan.masks if plan.scored is None else plan.scored)[draws]
        block = self.block_size
        copy = CleanCopy(noisy_start=first.start // block * block, noisy_end=len(last.ids),
                         clean_end=last.start // block * block)  # fmt: skip
        return Job(torch.tensor(framed.ids, dtype=torch.long), first.start, masks, scored, copy)

    def absorb(self, losses: list[torch.Tensor]) -> None:
        """Split each job's (R, L) losses back into its blocks' (N, L_b) draws and tally them."""
        if len(losses) != len(self.placed):
            raise ValueError(f"{len(losses)} losses for {len(self.placed)} sides")
        self.rows += sum(len(side_losses) for side_losses in losses)
        per_block: list[list[torch.Tensor | None]] = [[None] * len(sides) for sides, _ in self.blocks]
        for side_losses, (_, placed) in zip(losses, self.placed, strict=True):
            for p in placed:
                block_losses = torch.zeros((len(p.slots), p.length), dtype=torch.float64)
                draws = (p.slots >= 0).nonzero().flatten()
                block_losses[draws] = side_losses[p.slots[draws], p.offset : p.offset + p.length]
                per_block[p.block][p.member] = block_losses
        for (_, draws), block_losses in zip(self.blocks, per_block, strict=True):
            got = [member for member in block_losses if member is not None]
            if got:  # the block's sides still drawing, in order (RecordDraws.absorb's contract)
                draws.absorb(got)

    def estimates(self) -> list[Estimate]:
        parts: list[list[Estimate]] = [[] for _ in self.framed]
        for sides, draws in self.blocks:
            for side, estimate in zip(sides, draws.estimates(), strict=True):
                parts[side].append(estimate)
        return [total(side) for side in parts]

    def contributions(self) -> list[torch.Tensor]:
        """Per side, its blocks' per-token shares concatenated in token order (blocks are sorted)."""
        return self._per_side([draws.contributions() for _, draws in self.blocks])

    def contribution_errors(self) -> list[torch.Tensor]:
        """Per side, its blocks' per-token standard errors in token order (each block draws its own masks)."""
        return self._per_side([draws.contribution_errors() for _, draws in self.blocks])

    def _per_side(self, per_block: list[list[torch.Tensor]]) -> list[torch.Tensor]:
        parts: list[list[torch.Tensor]] = [[] for _ in self.framed]
        for (sides, _), values in zip(self.blocks, per_block, strict=True):
            for side, shares in zip(sides, values, strict=True):
                parts[side].append(shares)
        return [torch.cat(side) for side in parts]

    def difference(self, first: int = 0, second: int = 1) -> Estimate:
        """side `second` − side `first` (rejected − chosen), Σ over blocks: paired within a block both
        sides have, a block only one side has counted with its sign."""
        parts = []
        for sides, draws in self.blocks:
            if first in sides and second in sides:
                parts.append(draws.difference(sides.index(first), sides.index(second)))
            elif second in sides:
                parts.append(draws.estimates()[sides.index(second)])
            elif first in sides:
                estimate = draws.estimates()[sides.index(first)]
                parts.append(Estimate(-estimate.value, estimate.se))
        return total(parts)

    def watched(self) -> Estimate:
        return self.difference() if len(self.framed) == 2 else self.estimates()[0]

    def per_draw(self) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Per side, Σ over its blocks of the d-th draw's value (an enumerated block adds its exact sum
        to every draw), and the draws' strata: a block record seen as one record whose draws are
        independent across d with mean the side's NLL, which is what --until-decided's rule needs.
        Needs the blocks' shared shape (`of`); the sides still in contention have drawn the same rounds."""
        sums: list[torch.Tensor | float] = [0.0] * len(self.framed)
        strata = None
        for sides, draws in self.blocks:
            for side, tally in zip(sides, draws.tallies, strict=True):
                if tally.exact:
                    sums[side] = sums[side] + tally.estimate().value
                    continue
                sums[side] = sums[side] + tally.all_values()
                if self.active[side] and (strata is None or len(tally.all_values()) > len(strata)):
                    strata = tally.all_strata()
        assert strata is not None, "a record with a Monte Carlo block has strata"
        count = len(strata)
        return [torch.full((count,), float(v), dtype=torch.float64) if isinstance(v, float) else v
                for v in sums], strata  # fmt: skip

    def next_round(self) -> bool:
        """Plan another round for every block still drawing, as RecordDraws does for one: the goal is
        the SE of the block sum (or the difference of sums), --until-decided looks at per-draw sums."""
        settings = self.settings
        self.drawing = [not all(tally.exact for tally in draws.tallies) for _, draws in self.blocks]
        if not any(self.drawing):  # every block enumerated: exact numbers, an exact pick
            self.decided = True if self.deciding else None
            return False
        passes = max(draws.passes for (_, draws), on in zip(self.blocks, self.drawing, strict=True) if on)
        if self.deciding:
            looks = planned_passes(settings.samples, settings.cap)
            values, strata = self.per_draw()
            self.active = contenders(values, strata, self.active, decision_rule(settings), self.round, len(looks))
            self.decided = sum(self.active) == 1
            if self.decided or (settings.target_se is not None and settings.reached(self.watched().se)):
                return False
            size = look_round(settings, self.round, passes)
            self.capped = size is None
        else:
            se = self.watched().se
            size = target_round(settings, passes, se)
            self.capped = size is None and settings.target_se is not None and not settings.reached(se)
        if size is None:
            return False
        self.round += 1
        for (sides, draws), on in zip(self.blocks, self.drawing, strict=True):
            if on:
                draws.active = [self.active[side] for side in sides]
                draws.plan_more(size, spend_all=size == settings.cap - passes)
        return True
