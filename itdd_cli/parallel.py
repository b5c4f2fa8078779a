"""Data parallel scoring: every process reads the input, scores its own share of the records,
and the main process writes all rows in input order.

Launched by `accelerate launch -m itdd_cli …` or `torchrun -m itdd_cli …` (both set RANK and
WORLD_SIZE). Records are dealt round-robin inside chunks; after each chunk the processes
exchange their rows (as Python objects over gloo, which works beside any GPU backend), so
memory stays bounded and output streams. A record's numbers depend only on (seed, its tokens),
so the merged output equals a single-process run. An invalid record in any shard stops every
process at the same point, after the rows before it are written.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

from itdd_cli.errors import ItddError, ModelError

CHUNK_RECORDS = 256


@dataclass(frozen=True)
class Shard:
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def current_shard() -> Shard:
    """This process's place in a launch; starts the process group when there are several."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Shard()
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    return Shard(dist.get_rank(), dist.get_world_size())


def close_shard(shard: Shard) -> None:
    """Wait for every process, then tear the group down: exiting with gloo's threads still up
    can abort the process (SIGABRT) at interpreter shutdown."""
    if shard.world <= 1:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


@dataclass(frozen=True)
class _Failure:
    """An error raised on one shard, carried to every process at the record where it happened."""

    position: int
    error: ItddError


def _score_share(score_chunk: Callable[[list[tuple[int, dict[str, Any]]]], Iterator[dict[str, Any]]],
                 mine: list[tuple[int, tuple[int, dict[str, Any]]]]) -> list[Any]:  # fmt: skip
    """(position, row) for each of this process's records, and a _Failure where one failed."""
    results: list[Any] = []
    try:
        for row in score_chunk([obj for _, obj in mine]):
            results.append((mine[len(results)][0], row))
    except Exception as error:  # the record after the last finished one failed; never leave peers waiting
        position = mine[len(results)][0] if len(results) < len(mine) else mine[-1][0]
        if not isinstance(error, ItddError):
            error = ModelError(f"internal error on process {os.environ.get('RANK')}: {type(error).__name__}: {error}")
        results.append(_Failure(position, error))
    return results


def score_sharded(
    objects: Iterable[tuple[int, dict[str, Any]]],
    score_chunk: Callable[[list[tuple[int, dict[str, Any]]]], Iterator[dict[str, Any]]],
    shard: Shard,
) -> Iterator[dict[str, Any]]:
    """Rows for every record in input order (on the main process; others yield nothing)."""
    import torch.distributed as dist

    iterator = iter(objects)
    offset = 0
    while True:
        chunk = list(islice(iterator, CHUNK_RECORDS))  # a bad line arrives as a value, never raised
        mine = [(offset + i, obj) for i, obj in enumerate(chunk) if (offset + i) % shard.world == shard.rank]
        gathered: list[Any] = [None] * shard.world
        dist.all_gather_object(gathered, _score_share(score_chunk, mine))
        merged = sorted((item for share in gathered for item in share), key=_position)
        for item in merged:
            if isinstance(item, _Failure):
                raise item.error
            if shard.is_main:
                yield item[1]
        if len(chunk) < CHUNK_RECORDS:
            return
        offset += len(chunk)


def _position(item: Any) -> int:
    return item.position if isinstance(item, _Failure) else item[0]
