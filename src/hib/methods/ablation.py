"""ablation: what the task loses when one head alone passes its training mean, not its context.

The single-head effect itself, the reference every cheaper score tries to predict. Where the
task's metric needs no decoding (classification: clips right), the score is the metric's drop;
on a good model most single heads change few or no clips, so ties are broken by the loss
increase: it enters squashed into less than half a step, keeping the order of the drops and
ranking the heads within each. Where the metric needs decoding (ASR's WER), re-decoding for
every head would be too slow, so the score is the loss increase alone.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset

from hib.methods.base import HeadMethod
from hib.methods.registry import register
from hib.tasks.base import Batch, TaskModel


@register
class Ablation(HeadMethod):
    name = "ablation"

    @torch.no_grad()
    def score(self, model: TaskModel, data: Dataset) -> torch.Tensor:
        model.eval()
        heads = model.heads()
        base, ablated = torch.zeros(2), torch.zeros(*heads.shape, 2)
        count = 0
        for batch in self.batches(model, data):
            # unmasked layer inputs once per batch; a head's ablation reruns only its layer on
            states = model.layer_inputs(batch)
            base += _tally(model, model.outputs_from(states, batch), batch)
            for head in heads:
                mask = torch.ones(heads.shape)
                mask[head.layer, head.index] = 0
                with heads.masked(mask, fill="mean"):
                    outputs = model.outputs_from(states[: head.layer + 1], batch)
                ablated[head.layer, head.index] += _tally(model, outputs, batch)
            count += len(batch)
        count = max(count, 1)
        loss_rise = (ablated[..., 1] - base[1]) / count
        if torch.isnan(base[0]):  # no cheap metric: the loss alone
            return torch.where(heads.alive(), loss_rise, torch.zeros(()))
        drop = (base[0] - ablated[..., 0]) / count
        tie_break = torch.atan(loss_rise) / (math.pi * count)  # in (-1/2n, 1/2n): a half step
        return torch.where(heads.alive(), drop + tie_break, torch.zeros(()))


def _tally(model: TaskModel, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
    """(examples right, or NaN without a cheap metric; summed loss) of one batch, on the CPU."""
    loss = model.loss_of(outputs, batch, reduction="sum").detach()
    correct = model.correct(outputs, batch)
    right = loss.new_tensor(float("nan")) if correct is None else correct
    return torch.stack([right.to(loss.dtype), loss]).cpu()
