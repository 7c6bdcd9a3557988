"""attattr: integrated gradients on each layer's attention map (Hao et al. 2021).

Attr(A) = A * (1/m) sum_{k=1..m} dF/dA at (k/m) A, from the all-zero map, one layer at a time
with the other layers untouched; F is the probability of the model's own answer
(`TaskModel.answer`: the class it predicts, as in the authors' code; for ASR the reference
tokens, teacher-forced). A head's score is the sum over clips of its largest attribution entry.

Scaling a layer's map by alpha scales its context C = A V to alpha C (V does not depend on
the layer's own map), so the map is never touched: the context is scaled through
`Heads.replace_context`, and dF/dA = dF/dC' V^T with dF/dC' from `Heads.probed`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset

from hib.heads import Heads
from hib.methods.base import HeadMethod
from hib.methods.registry import register
from hib.tasks.base import Batch, TaskModel, repeat

STACKED_POSITIONS = 256 * 50
"""Positions per stacked forward (steps x batch x sequence length): 256 one-second clips, so
each matrix product has rows to fill, and no more, so 30 s windows (1,500 positions, ASR)
stack one step of a batch at a time instead of filling the memory."""


@register
class AttAttr(HeadMethod):
    name = "attattr"
    distributed = True

    def __init__(self, steps: int = 20, **common):
        super().__init__(**common)
        self.steps = steps

    def options(self) -> dict:
        return {**super().options(), "steps": self.steps}

    def score(self, model: TaskModel, data: Dataset) -> torch.Tensor:
        model.eval()
        total: list[torch.Tensor] | None = None
        for batch in self.counted_batches(model, data):
            best = [a.amax(dim=(2, 3)).sum(dim=0) for a in self.attributions(model, batch)]
            total = best if total is None else [t + b for t, b in zip(total, best, strict=True)]
        heads = model.heads()
        grid = heads.on_grid(total) if total else torch.zeros(heads.shape)
        return self.world.sum(grid)  # every process's clips

    def attributions(self, model: TaskModel, batch: Batch) -> list[torch.Tensor]:
        """Per layer, Attr(A) (B, h, T, S) over the layer's current heads.

        The unscaled layer inputs are computed once per batch; the steps for layer l start
        from layer l's input (scaling l's map changes nothing before it), several steps at a
        time stacked along the batch, each with its own alpha.
        """
        heads = model.heads()
        with torch.no_grad():
            states = model.layer_inputs(batch)
            answer = model.answer(model.outputs_from(states, batch), batch)
            with heads.capture_values() as values:
                maps = model.upstream.forward_from(states[:1], output_attentions=True).attentions
        alphas = torch.arange(1, self.steps + 1) / self.steps
        per_chunk = max(1, STACKED_POSITIONS // (len(batch) * states[0].shape[1]))
        out = []
        for layer, attn in enumerate(maps):
            if not heads.kept[layer]:  # an inert layer has no map to attribute
                out.append(torch.zeros_like(attn))
                continue
            grad = sum(
                _context_grad(model, heads, states[: layer + 1], batch, answer, chunk)
                for chunk in alphas.split(per_chunk)
            )
            out.append(attn * torch.einsum("bthd,bshd->bhts", grad, values[layer][0]) / self.steps)
        return out


def _context_grad(
    model: TaskModel,
    heads: Heads,
    states: list[torch.Tensor],
    batch: Batch,
    answer: Any,
    alphas: torch.Tensor,
) -> torch.Tensor:
    """sum over alphas of dF/dC' (B, T, h, d), the last layer of `states` at C' = alpha C."""
    layer, n = len(states) - 1, len(alphas)
    stacked = [repeat(s, n) for s in states]
    scales = alphas.repeat_interleave(len(batch)).view(-1, 1, 1, 1)

    def scale(at: int, ctx: torch.Tensor) -> torch.Tensor:
        return ctx * scales.to(ctx.device, ctx.dtype) if at == layer else ctx

    with heads.replace_context(scale), heads.probed() as probes:
        repeated = batch.without_waves().repeat(n)
        outputs = model.outputs_from(stacked, repeated)
        prob = model.answer_probability(outputs, repeated, repeat(answer, n))
    grad = torch.autograd.grad(prob, probes[layer][0])[0]
    return grad.view(n, len(batch), *grad.shape[1:]).sum(0)
