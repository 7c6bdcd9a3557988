"""Data parallelism over the processes `accelerate launch` starts: the one module that knows.

    accelerate launch --multi_gpu --num_processes 2 -m hib score RUN_DIR --method taylor

Every process runs the same command on the same seeds. Data-parallel steps split each global
batch into contiguous parts, one per process (`World.batches`, each process reading only its
clips); gradients are summed over processes weighted by each part's share of the batch
(`World.reduce_gradients`), so a step equals one process's step on the whole batch, uneven
last batches included; sums (capacities, Taylor and Fisher sums, head moments) are summed
(`World.sum`, `World.merge_moments`); only the main process writes files. A process whose
part of a batch is empty (a batch smaller than the world) steps on a stand-in copy of the
batch's last clip that counts for nothing, so every process takes every step.

Without a launcher `world()` is `LOCAL`: one process, no communication, nothing of accelerate
imported, the numbers of a plain run.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch

WAIT = timedelta(hours=24)
"""How long a process waits for the others at a collective: a share of `hib compare`'s grid
can take hours while the other processes have finished theirs."""


@dataclass(frozen=True)
class Part:
    """The rows [start, stop) of a global batch of `total` clips that this process holds;
    none (start == stop): it holds a stand-in that counts for nothing."""

    start: int
    stop: int
    total: int

    @property
    def count(self) -> int:
        return self.stop - self.start

    @property
    def weight(self) -> float:
        """This part's share of the global batch (what its mean loss weighs in the step)."""
        return self.count / self.total


class World:
    """The processes of one job, and this one's rank among them; size 1: this one alone."""

    def __init__(self, rank: int = 0, size: int = 1, device: torch.device | None = None):
        self.rank, self.size = rank, size
        self.device = device or torch.device("cpu")  # where collectives run (cuda for nccl)

    @property
    def is_main(self) -> bool:
        """The process that writes files and prints."""
        return self.rank == 0

    def part(self, total: int) -> Part:
        """This process's contiguous share of `total` items, the first ones one larger."""
        base, extra = divmod(total, self.size)
        start = self.rank * base + min(self.rank, extra)
        return Part(start, start + base + (self.rank < extra), total)

    def batches(
        self, dataset: Any, order: Sequence[int], size: int, collate: Callable[[list], Any]
    ) -> Iterator[Any]:
        """`dataset`'s items in `order`, in global batches of `size`: this process's part of
        each, collated, with `part` set on it when there are several processes."""
        order = list(order)
        for start in range(0, len(order), size):
            chunk = order[start : start + size]
            if self.size == 1:
                yield collate([dataset[i] for i in chunk])
                continue
            part = self.part(len(chunk))
            batch = collate([dataset[i] for i in chunk[part.start : part.stop] or chunk[-1:]])
            batch.part = part
            yield batch

    def seed(self, seed: int) -> int:
        """A seed of this process's own, for randomness drawn per clip as it is read
        (augmentation): the same as `seed` on the main process."""
        if self.rank == 0:
            return seed
        return int(np.random.SeedSequence([seed, self.rank]).generate_state(1)[0])

    # --- collectives: the identity for one process ------------------------------------------
    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """The element-wise sum of `value` over processes."""
        if self.size == 1:
            return value
        buffer = value.to(self.device).clone()
        torch.distributed.all_reduce(buffer)
        return buffer.to(value.device)

    def sum_floats(self, *values: float) -> list[float]:
        """Python numbers summed over processes (in float64)."""
        if self.size == 1:
            return list(values)
        return self.sum(torch.tensor(values, dtype=torch.float64)).tolist()

    def reduce_gradients(self, params: Iterable[torch.Tensor], part: Part | None) -> None:
        """Each parameter's gradient becomes the parts' gradients weighted by their shares:
        the gradient of the global batch's mean loss. No part: a batch every process holds
        whole (nothing to reduce)."""
        if part is None or self.size == 1:
            return
        params = [p for p in params if p.grad is not None]
        flat = torch.cat([p.grad.reshape(-1) for p in params]) * part.weight
        flat = self.sum(flat)
        for p, grad in zip(params, flat.split([p.numel() for p in params]), strict=True):
            p.grad = grad.view_as(p).to(p.grad.dtype)

    def merge_moments(
        self, count: torch.Tensor, mean: torch.Tensor, m2: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-process (count (L,), mean, M2 (L, ...)) of disjoint data -> those of all of it
        (Chan et al.'s pairwise update, in float64)."""
        if self.size == 1:
            return count, mean, m2
        n = count.double().view(-1, *[1] * (mean.dim() - 1))
        total = self.sum(n)
        merged = self.sum(mean.double() * n) / total.clamp(min=1)
        spread = self.sum(m2.double() + n * (mean.double() - merged) ** 2)
        return total.flatten().to(count.dtype), merged.to(mean.dtype), spread.to(m2.dtype)

    def gather_rows(self, rows: torch.Tensor) -> torch.Tensor:
        """Every process's `rows` (n_r, ...) concatenated in rank order (same trailing shape)."""
        return rows if self.size == 1 else torch.cat(self._gathered(rows))

    def gather_json(self, value: Any) -> list[Any]:
        """Every process's JSON-serialisable `value`, in rank order (JSON keeps floats exact;
        nothing is pickled)."""
        if self.size == 1:
            return [value]
        own = torch.tensor(list(json.dumps(value).encode()), dtype=torch.uint8)
        return [json.loads(bytes(chunk.tolist())) for chunk in self._gathered(own)]

    def _gathered(self, rows: torch.Tensor) -> list[torch.Tensor]:
        """Each process's `rows`, padded to the longest for the all-gather and cut back."""
        own = torch.tensor([len(rows)], device=self.device)
        sizes = [torch.zeros_like(own) for _ in range(self.size)]
        torch.distributed.all_gather(sizes, own)
        longest = max(int(s) for s in sizes)
        padded = torch.zeros((longest, *rows.shape[1:]), dtype=rows.dtype, device=self.device)
        padded[: len(rows)] = rows.to(self.device)
        parts = [torch.empty_like(padded) for _ in range(self.size)]
        torch.distributed.all_gather(parts, padded)
        return [p[: int(s)].to(rows.device) for p, s in zip(parts, sizes, strict=True)]

    def barrier(self) -> None:
        if self.size > 1:
            torch.distributed.barrier()

    @contextmanager
    def main_first(self) -> Iterator[None]:
        """The main process runs the block first (building a missing corpus, say); the others
        then run it on what it left."""
        if not self.is_main:
            self.barrier()
        yield
        if self.is_main:
            self.barrier()


LOCAL = World()
"""This process alone: what every data-parallel step does when nothing launched others, and
what each process uses for work that is its own (a cell of `hib compare`'s grid)."""


@functools.cache
def world() -> World:
    """The job's processes: those a launcher (`accelerate launch`, torchrun) started, set up
    through Accelerate (gloo on CPUs, nccl on GPUs), else `LOCAL`."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return LOCAL
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available(), timeout=WAIT)
    return World(state.process_index, state.num_processes, state.device)
