"""The one interface every head-importance method implements.

    scores = get_method("taylor", seed=0, clips=500).score(model, train_split)  # (L, H)

Higher score = more important head. Methods reach heads only through `model.heads()`
(hib.heads) and the task only through the `TaskModel` (its loss, its predictions: hib.tasks),
so they work on every upstream the heads module supports and on every task.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import ClassVar

import torch
from torch.utils.data import Dataset

from hib.config import DEFAULT_SEED
from hib.distributed import LOCAL, World
from hib.tasks.base import Batch, TaskModel


class HeadMethod:
    """Base class: subclasses set `name` and implement `score`."""

    name: ClassVar[str]
    data_driven: ClassVar[bool] = True  # False: the score ignores the data (random, magnitude)
    stochastic: ClassVar[bool] = False
    """True when the scores are one draw of a distribution (random): a curve is then the mean
    over seeds, and re-scoring a pruned model (iterative pruning) means nothing."""
    tuned: ClassVar[dict[str, tuple]] = {}
    """Options chosen on the validation split when the caller leaves them out, with their
    candidates (HIB's beta): `Run.score` fits each and keeps the best validation curve."""
    rearrange_extras: ClassVar[tuple[str, ...] | None] = None
    """The stored `extras` that `rearrange` reads (fisher: its blocks); None: the method has no
    post-ranking mask rearrangement."""
    distributed: ClassVar[bool] = False
    """True when `score` runs data-parallel over `world` (hib.distributed): each process
    reads its part of every batch (`batches`), and gradients and sums are reduced over the
    processes. Other methods compute everything on every process, alike."""

    def __init__(
        self,
        seed: int = DEFAULT_SEED,
        clips: int = 1000,
        batch_size: int = 32,
        min_steps: int = 32,
        progress: bool = False,
        world: World = LOCAL,
    ):
        self.seed = seed
        self.clips = clips
        self.batch_size = batch_size
        self.min_steps = min_steps
        self.progress = progress  # a bar per epoch, for the methods that fit for a while
        self.world = world if self.distributed else LOCAL

    def score(self, model: TaskModel, data: Dataset) -> torch.Tensor:
        """(n_layers, n_heads) importance on the model's original head grid."""
        raise NotImplementedError

    def extras(self) -> dict[str, torch.Tensor]:
        """Tensors besides the scores, after `score`, that a later step needs (`rearrange`):
        `Run.score` stores them in the scores' file, so pruning never has to re-score."""
        return {}

    @classmethod
    def rearrange(
        cls, extras: dict[str, torch.Tensor], mask: torch.Tensor, alive: torch.Tensor
    ) -> torch.Tensor:
        """The (L, H) keep-mask replacing `mask`, the one the ranking gives, with as many heads
        kept per layer; `extras`: the stored ones (`rearrange_extras`), `alive`: the heads that
        physically exist. Only for methods that set `rearrange_extras`."""
        raise NotImplementedError(f"method {cls.name} has no mask rearrangement")

    def options(self) -> dict:
        """What results.json records about how the scores were made."""
        return {"seed": self.seed, "clips": self.clips}

    def passes(self, epochs: int, data: Dataset) -> int:
        """Epochs for a fitted method: at least `epochs`, and enough for `min_steps` steps.

        Few clips then mean more passes over the same clips, not an unconverged fit; every
        fitted method (hib, hib-attn, l0) gets the same floor, so comparisons stay fair.
        """
        per_epoch = math.ceil(min(self.clips, len(data)) / self.batch_size)
        return max(epochs, math.ceil(self.min_steps / max(per_epoch, 1)))

    def batches(self, model: TaskModel, data: Dataset, epoch: int = 0) -> Iterator[Batch]:
        """The first `clips` clips of a seeded shuffle (the same clips every epoch, new order),
        batched by the model's `collate`: this process's part of each batch (`world`), a
        stand-in where it has none (`Batch.counted` 0), so every process takes every step."""
        order = torch.randperm(len(data), generator=torch.Generator().manual_seed(self.seed))
        subset = order[: self.clips].tolist()
        generator = torch.Generator().manual_seed(self.seed + 1 + epoch)
        shuffled = [subset[i] for i in torch.randperm(len(subset), generator=generator)]
        yield from self.world.batches(data, shuffled, self.batch_size, model.collate)

    def counted_batches(self, model: TaskModel, data: Dataset) -> Iterator[Batch]:
        """`batches` for a method that sums over clips and takes no step: no stand-ins."""
        return (batch for batch in self.batches(model, data) if batch.counted)
