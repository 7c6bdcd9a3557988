"""greedy: backward elimination, the head whose removal hurts the task loss least goes first.

On a fixed subset of training clips (the first `clips` of the seeded shuffle), starting from
the full model, every remaining head is tried out (masked to its training mean on top of the
heads already removed), the one whose removal leaves the lowest loss is removed for good, and
all remaining heads are tried again, until one is left. A head's score encodes the order:
the k-th of n removed scores k / n (the first removed the lowest, the last one left 1), and a
head removed physically 0. Unlike single-head ablation, each removal is judged in the company
of the removals before it, so of two heads that duplicate each other the second is kept to the
end.

Cost, in passes over the subset: with n heads, the steps try n, n - 1, ..., 2 heads,
n(n + 1)/2 - 1 trials, each a forward from the tried head's own layer (the layer inputs under
the current removals are computed once per step: n - 1 more forwards). 24 heads (Whisper tiny's
encoder): 299 trials + 23 forwards; 48 heads: 1,175 + 47; 144 heads (wav2vec2 base):
10,439 + 143, a trial running on average about half the layers. `forwards` (in results.json)
counts both.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from hib.methods.base import HeadMethod
from hib.methods.registry import register
from hib.tasks.base import TaskModel


@register
class Greedy(HeadMethod):
    name = "greedy"

    def __init__(self, **common):
        super().__init__(**common)
        self.forwards = 0

    def options(self) -> dict:
        return {**super().options(), "forwards": self.forwards}

    @torch.no_grad()
    def score(self, model: TaskModel, data: Dataset) -> torch.Tensor:
        model.eval()
        heads = model.heads()
        batches = list(self.batches(model, data))
        mask = heads.alive()
        remaining, order = list(heads), []
        self.forwards = 0
        while len(remaining) > 1:
            losses = torch.zeros(len(remaining), dtype=torch.float64)
            for batch in batches:
                with heads.masked(mask, fill="mean"):
                    states = model.layer_inputs(batch)
                for i, head in enumerate(remaining):
                    trial = mask.clone()
                    trial[head.layer, head.index] = False
                    with heads.masked(trial, fill="mean"):
                        outputs = model.outputs_from(states[: head.layer + 1], batch)
                    losses[i] += float(model.loss_of(outputs, batch, reduction="sum"))
            self.forwards += 1 + len(remaining)
            head = remaining.pop(int(losses.argmin()))  # ties: the first in grid order
            mask[head.layer, head.index] = False
            order.append(head)
        order += remaining
        scores = torch.zeros(heads.shape)
        for rank, head in enumerate(order, start=1):
            scores[head.layer, head.index] = rank / len(order)
        return scores
