"""random: a seeded random ranking, the floor every method must clear."""

from __future__ import annotations

import torch

from hib.data.speech_commands import KSDataset
from hib.downstream import KSModel
from hib.methods.base import HeadMethod
from hib.methods.registry import register


@register
class RandomScores(HeadMethod):
    name = "random"
    data_driven = False

    def score(self, model: KSModel, data: KSDataset) -> torch.Tensor:
        shape = model.heads().shape
        return torch.rand(shape, generator=torch.Generator().manual_seed(self.seed))
