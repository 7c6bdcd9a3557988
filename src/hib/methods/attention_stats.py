"""confidence and entropy: how peaked a head's attention is (Voita et al. 2019; Michel et al. 2019).

Both read only the attention maps, never the labels or the output: a confident (low-entropy)
head attends to few positions, which Voita et al. found typical of the heads that matter.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from hib.methods.base import HeadMethod
from hib.methods.registry import register
from hib.tasks.base import TaskModel


class AttentionStatistic(HeadMethod):
    """Mean over clips and query positions of a statistic of each head's attention row."""

    @staticmethod
    def per_query(attn: torch.Tensor) -> torch.Tensor:
        """(B, h, T, S) attention -> (B, h, T), higher = more important."""
        raise NotImplementedError

    @torch.no_grad()
    def score(self, model: TaskModel, data: Dataset) -> torch.Tensor:
        model.eval()
        heads = model.heads()
        sums = [torch.zeros(()) for _ in heads.blocks]
        queries = 0
        for batch in self.batches(model, data):
            maps = heads.attention_maps(batch.waves)
            for layer, attn in enumerate(maps):
                sums[layer] = sums[layer] + self.per_query(attn.float()).sum(dim=(0, 2))
            queries += maps[0].shape[0] * maps[0].shape[2]
        return heads.on_grid([s / queries for s in sums])


@register
class Confidence(AttentionStatistic):
    """The head's largest attention weight per query (Voita et al. 2019)."""

    name = "confidence"

    @staticmethod
    def per_query(attn: torch.Tensor) -> torch.Tensor:
        return attn.amax(dim=-1)


@register
class Entropy(AttentionStatistic):
    """Minus the entropy of the head's attention row (nats): peaked heads score high."""

    name = "entropy"

    @staticmethod
    def per_query(attn: torch.Tensor) -> torch.Tensor:
        return -torch.special.entr(attn).sum(dim=-1)
