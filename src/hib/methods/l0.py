"""l0: hard-concrete gates per head, trained for the task under an expected-L0 penalty.

Voita et al. 2019: gate g = clamp(sigmoid((log u - log(1-u) + log_alpha) / T) * (r - l) + l,
0, 1) with T = 0.33, stretch (l, r) = (-0.1, 1.1), u ~ U(0, 1) drawn once per batch as in
their code; loss = task loss + lambda * sum_heads P(g != 0). Only log_alpha trains (the network
is frozen), from 0 as their near-zero initialisation; a removed head passes its training mean
(`Heads.gated`). A head's score is the probability that its gate is open,
P(g != 0) = sigmoid(log_alpha - T log(-l / r)).

Plain SGD, not Adam: with the network frozen, many gates get little besides the penalty's
gradient, which Adam's per-parameter normalisation would turn into a fixed-speed push towards
closed whatever lambda is; with SGD lambda stays the trade-off weight it is in the loss.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset

from hib.methods.base import HeadMethod
from hib.methods.registry import register
from hib.tasks.base import TaskModel

TEMPERATURE = 0.33
STRETCH = (-0.1, 1.1)
EPS = 1e-6


@register
class L0Gates(HeadMethod):
    name = "l0"
    distributed = True

    def __init__(self, penalty: float = 0.01, epochs: int = 2, lr: float = 1.0, **common):
        super().__init__(**common)
        self.penalty, self.epochs, self.lr = penalty, epochs, lr

    def options(self) -> dict:
        return {**super().options(), "penalty": self.penalty, "epochs": self.epochs, "lr": self.lr}

    def score(self, model: TaskModel, data: Dataset) -> torch.Tensor:
        model.eval()
        heads = model.heads()
        log_alpha = torch.zeros(heads.shape, device=heads.device, requires_grad=True)
        optimizer = torch.optim.SGD([log_alpha], lr=self.lr)
        generator = torch.Generator().manual_seed(self.seed)
        alive = heads.alive().to(heads.device)
        for epoch in range(self.passes(self.epochs, data)):
            for batch in self.batches(model, data, epoch):
                gates = sample_gates(log_alpha, generator)
                with heads.gated(gates, fill="mean"):
                    task_loss = model.loss(batch)
                l0 = open_probability(log_alpha)[alive].sum()
                loss = task_loss + self.penalty * l0
                (log_alpha.grad,) = torch.autograd.grad(loss, [log_alpha])
                self.world.reduce_gradients([log_alpha], batch.part)
                optimizer.step()
        return torch.where(alive, open_probability(log_alpha).detach(), 0.0).cpu()


def sample_gates(log_alpha: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One hard-concrete draw per gate, in [0, 1] and exactly 0 or 1 with positive probability;
    drawn by the CPU generator on every device (the same draws anywhere)."""
    u = torch.rand(log_alpha.shape, generator=generator).to(log_alpha.device).clamp(EPS, 1 - EPS)
    concrete = torch.sigmoid((u.log() - (1 - u).log() + log_alpha) / TEMPERATURE)
    low, high = STRETCH
    return (concrete * (high - low) + low).clamp(0, 1)


def open_probability(log_alpha: torch.Tensor) -> torch.Tensor:
    """P(gate != 0): the stretched concrete lies above 0."""
    low, high = STRETCH
    return torch.sigmoid(log_alpha - TEMPERATURE * math.log(-low / high))
