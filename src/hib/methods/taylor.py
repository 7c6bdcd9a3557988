"""taylor: the loss's sensitivity to a head gate at 1, E_x |dL/dg| (Michel et al. 2019).

A removed head passes its training mean, so the gate is C' = g C + (1 - g) mean (as in
`Heads.gated`) and dL/dg = sum_{t,d} (C - mean) dL/dC'. Michel et al. take the absolute value
per example before averaging, so a head that helps some clips and hurts others still counts;
one backward per batch gives every example's derivative (`Heads.probed`, summed loss), where a
batch-shared gate would only give the batch's sum. `taylor-norm` divides each layer's scores
by their L2 norm, as Michel et al. do before ranking heads across layers.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from hib.heads import Heads
from hib.methods.base import HeadMethod
from hib.methods.registry import register
from hib.tasks.base import Batch, TaskModel


@register
class Taylor(HeadMethod):
    name = "taylor"
    distributed = True

    def __init__(self, normalize: bool = False, **common):
        super().__init__(**common)
        self.normalize = normalize

    def options(self) -> dict:
        return {**super().options(), "normalize": self.normalize}

    def score(self, model: TaskModel, data: Dataset) -> torch.Tensor:
        model.eval()
        heads = model.heads()
        fill = heads.fill_values("mean")
        total = [torch.zeros(len(kept)) for kept in heads.kept]
        count = 0
        for batch in self.counted_batches(model, data):
            for layer, grad in gate_gradients(model, heads, batch, fill).items():
                total[layer] += grad.abs().sum(dim=0).cpu()
            count += len(batch)
        total = [self.world.sum(t) for t in total]  # every process's clips
        (count,) = self.world.sum_floats(count)
        scores = heads.on_grid([t / max(count, 1) for t in total])
        if self.normalize:
            scores = scores / scores.norm(dim=1, keepdim=True).clamp(min=1e-12)
        return scores


@register
class TaylorNorm(Taylor):
    name = "taylor-norm"

    def __init__(self, normalize: bool = True, **common):
        super().__init__(normalize=normalize, **common)


def gate_gradients(
    model: TaskModel, heads: Heads, batch: Batch, fill: torch.Tensor
) -> dict[int, torch.Tensor]:
    """Layer -> (B, h): each example's dL_x/dg for the layer's current heads (order of `kept`),
    at every gate 1, from one backward of the batch's summed loss; layers without heads are
    left out. `fill` (L, H, d): what a closed gate passes."""
    layers = [layer for layer, kept in enumerate(heads.kept) if kept]
    with heads.capture() as contexts, heads.probed() as probes:
        loss = model.loss(batch, reduction="sum")
    grads = torch.autograd.grad(loss, [probes[layer][0] for layer in layers])
    out = {}
    for layer, grad in zip(layers, grads, strict=True):
        delta = contexts[layer][0] - fill[layer, heads.kept[layer]]  # (B, T, h, d)
        out[layer] = (delta * grad).sum(dim=(1, 3))
    return out
