"""ablation: the accuracy lost when one head alone passes its training mean instead of its context.

The single-head effect itself, the reference every cheaper score tries to predict. On a good
model most single heads change few or no clips, so ties in accuracy drop are broken by the
loss increase: it enters squashed into less than half an accuracy step, keeping the order of
the drops and ranking the heads within each.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from hib.data.speech_commands import KSDataset
from hib.downstream import KSModel
from hib.methods.base import HeadMethod
from hib.methods.registry import register


@register
class Ablation(HeadMethod):
    name = "ablation"

    @torch.no_grad()
    def score(self, model: KSModel, data: KSDataset) -> torch.Tensor:
        model.eval()
        heads = model.heads()
        base, ablated = torch.zeros(2), torch.zeros(*heads.shape, 2)
        count = 0
        for waves, labels in self.batches(data):
            # unmasked layer inputs once per batch; a head's ablation reruns only its layer on
            states = model.upstream.layer_inputs(waves)
            base += _tally(model.from_states(states), labels)
            for head in heads:
                mask = torch.ones(heads.shape)
                mask[head.layer, head.index] = 0
                with heads.masked(mask, fill="mean"):
                    logits = model.from_states(states[: head.layer + 1])
                ablated[head.layer, head.index] += _tally(logits, labels)
            count += len(labels)
        count = max(count, 1)
        drop = (base[0] - ablated[..., 0]) / count
        loss_rise = (ablated[..., 1] - base[1]) / count
        tie_break = torch.atan(loss_rise) / (math.pi * count)  # in (-1/2n, 1/2n): a half step
        return torch.where(heads.alive(), drop + tie_break, torch.zeros(()))


def _tally(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(clips classified correctly, summed cross-entropy) of one batch."""
    correct = (logits.argmax(dim=-1) == labels).sum().float()
    return torch.stack([correct, F.cross_entropy(logits, labels, reduction="sum")])
