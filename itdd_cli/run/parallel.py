"""Data parallel scoring: every process reads the input, scores its own share of the records,
and the main process writes all rows in input order.

Launched by `accelerate launch -m itdd_cli …` or `torchrun -m itdd_cli …`. accelerate's
`PartialState` owns the process group, each process's device and the split of work; what is
itdd's own is below: records go in chunks, each chunk is split between the processes and their
rows are gathered back in input order before the next chunk starts, so memory stays bounded and
output streams. A record's numbers depend only on (seed, its tokens), so the merged output equals
a single-process run. An invalid record in any share stops every process at the same point,
after the rows before it are written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from itdd_cli.core.processes import launched, process_state
from itdd_cli.errors import ItddError, ModelError

CHUNK_RECORDS = 256

Chunk = list[tuple[int, dict[str, Any]]]  # (line, object) as the reader yields them


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def current_shard() -> Shard:
    """This process's place in a launch; one process needs no process group."""
    if not launched():
        return Shard()
    state = process_state()
    return Shard(state.process_index, state.num_processes)


def close_shard(shard: Shard) -> None:
    """Wait for every process, then tear the group down (exiting with it up can abort at shutdown).

    A plain gloo barrier, not accelerate's `wait_for_everyone`: that passes device_ids=[local rank],
    which names cuda:1 when two processes share one GPU, and the barrier then fails on that process."""
    if shard.world <= 1:
        return
    import torch.distributed as dist

    state = process_state()
    try:
        dist.barrier()  # the group is gloo: the barrier runs on the CPU whatever the devices
    finally:
        state.destroy_process_group()


@dataclass(frozen=True)
class _Failure:
    """An error raised on one process, carried to every process in place of the record that failed."""

    error: ItddError


def _score_share(score_chunk: Callable[[Chunk], Iterator[Any]], mine: Chunk) -> list[Any]:
    """A row for each of this process's records up to the first that failed, then its _Failure."""
    results: list[Any] = []
    try:
        for row in score_chunk(mine):
            results.append(row)
    except Exception as error:  # never leave peers waiting in the gather
        if not isinstance(error, ItddError):
            error = ModelError(f"internal error on process {os.environ.get('RANK')}: {type(error).__name__}: {error}")
        results.append(_Failure(error))
    return results


def score_sharded(
    objects: Iterable[tuple[int, dict[str, Any]]],
    score_chunk: Callable[[Chunk], Iterator[Any]],
    shard: Shard,
) -> Iterator[Any]:
    """Rows for every record in input order (on the main process; others yield nothing)."""
    from accelerate.utils import gather_object

    state = process_state()
    iterator = iter(objects)
    while True:
        chunk = list(islice(iterator, CHUNK_RECORDS))  # a bad line arrives as a value, never raised
        # consecutive slices, gathered in process order: the rows come back in input order, and
        # the first failure among them is the first in the input, where every process stops
        with state.split_between_processes(chunk) as mine:
            gathered = gather_object(_score_share(score_chunk, mine))
        for item in gathered:
            if isinstance(item, _Failure):
                raise item.error
            if shard.is_main:
                yield item
        if len(chunk) < CHUNK_RECORDS:
            return
