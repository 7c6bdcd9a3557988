"""How HIB weighs capacity during its fit: beta's schedule and which heads the penalty presses.

Each is one of `hib`'s options (docs/method.md, "HIB variants"):

- `warmup` (BetaWarmup): beta grows linearly from 0 over the first part of the fit, so the
  bottleneck first learns what the task needs before capacity costs anything;
- `budget` (BudgetPenalty): for a target pruned fraction, only the heads currently outside the
  top (1 - budget) pay for capacity, so the heads the pruning will remove are driven to zero
  capacity while the kept ones keep what the task uses; without it (CapacityPenalty) every
  head pays alike.
"""

from __future__ import annotations

import math

import torch

from hib.errors import HibError
from hib.prune import n_to_prune


class BetaWarmup:
    """beta at each step: 0 at step 0, rising linearly to `beta` at the last step of the first
    `fraction` of the fit's `total_steps`, then constant (fraction 0: `beta` throughout)."""

    def __init__(self, beta: float, fraction: float, total_steps: int):
        self.beta = beta
        self.steps = math.ceil(self.check(fraction) * total_steps)  # steps before beta is reached

    @staticmethod
    def check(fraction: float) -> float:
        if not 0 <= fraction <= 1:
            raise HibError(f"warmup {fraction:g}: a fraction of the fit must lie in [0, 1]")
        return fraction

    def __call__(self, step: int) -> float:
        if self.steps == 0:
            return self.beta
        return self.beta * min(1.0, step / max(self.steps - 1, 1))

    def done(self, step: int) -> bool:
        """Past the warm-up: only then is an epoch's loss comparable to the one before."""
        return step >= self.steps


class CapacityPenalty:
    """HIB's own penalty: the mean capacity over every head of the grid."""

    def __call__(self, capacity: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
        return capacity.mean()


class BudgetPenalty:
    """The mean capacity of the `budget` fraction of live heads with the lowest capacity in
    this batch (the ones a pruning at `budget` removes, as things stand): the same total weight
    as CapacityPenalty, all of it on those heads."""

    def __init__(self, budget: float):
        if not 0 < budget < 1:
            raise HibError(f"budget {budget:g}: a pruned fraction must lie in (0, 1)")
        self.budget = budget

    def __call__(self, capacity: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
        live = capacity[alive.to(capacity.device)]
        k = n_to_prune(self.budget, len(live))
        if k == 0:
            return capacity.sum() * 0.0
        lowest = live.detach().argsort()[:k]
        return live[lowest].mean()
