"""The per-block layout, kept as a baseline: block b of a record on a row of its own (the clean
blocks before b, then block b with its draw's masks, later blocks absent), one row per block and
draw, read by the adapters' `Layout.per_block`. The runner used to score block models this way;
tests compare the runner's [noisy ‖ clean] rows with it, and bench/block_layout.py times both."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from itdd_cli.io.records import Fields
from itdd_cli.models.base import ScoringModel
from itdd_cli.models.block import Layout
from itdd_cli.results.rows import SPECS, Command
from itdd_cli.scoring.blocks import BlockDraws
from itdd_cli.scoring.engine import Engine, Job
from itdd_cli.scoring.runner import ROW_VALUES, Settings, prepare


def per_block_jobs(draws: BlockDraws) -> list[Job]:
    return [job for _, block in draws.blocks for job in block.jobs()]


def absorb_per_block(draws: BlockDraws, losses: list) -> None:
    offset = 0
    for sides, block in draws.blocks:
        block.absorb(losses[offset : offset + len(sides)])
        offset += len(sides)
    assert offset == len(losses)


def score_per_block(
    command: Command, records: Iterable[dict[str, Any]], model: ScoringModel, settings: Settings,
    engine: Engine | None = None,
) -> list[dict[str, Any]]:  # fmt: skip
    """The rows `runner.score` gives, computed on per-block rows (all records share the engine)."""
    assert model.layout is Layout.per_block  # plain rows are read one block each
    spec = SPECS[command]
    prepared = [prepare(model, spec.parse(record, line, Fields()), settings) for line, record in enumerate(records, 1)]
    engine = engine or Engine(model, batch_rows=settings.batch_rows, max_tokens=settings.max_tokens)
    for item, losses in engine.run((item, per_block_jobs(item.draws)) for item in prepared):
        absorb_per_block(item.draws, losses)
    return [spec.row(**ROW_VALUES[command](item)) for item in prepared]
