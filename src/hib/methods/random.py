"""random: a seeded random ranking, the floor every method must clear."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from hib.methods.base import HeadMethod
from hib.methods.registry import register
from hib.tasks.base import TaskModel


@register
class RandomScores(HeadMethod):
    name = "random"
    data_driven = False
    stochastic = True

    def score(self, model: TaskModel, data: Dataset) -> torch.Tensor:
        shape = model.heads().shape
        return torch.rand(shape, generator=torch.Generator().manual_seed(self.seed))
