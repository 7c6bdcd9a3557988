"""hib: a head's contribution = its capacity (bits per frame) after fitting the bottleneck.

Only alpha is trained, the upstream and the task head stay frozen; the loss is
task loss + beta * mean capacity. Each head's score is its capacity averaged over the last epoch.
With several betas, the one whose pruning curve on the *validation* split has the largest
area wins (never the test split). Variants of the fit (`warmup`, `alpha_per`, `budget`):
hib.methods.hib_fit and docs/method.md, "HIB variants".
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from hib.bottleneck import HeadBottleneck, check_alpha_per
from hib.methods.base import HeadMethod
from hib.methods.hib_fit import BetaWarmup, BudgetPenalty, CapacityPenalty
from hib.methods.registry import register
from hib.tasks.base import TaskModel

DEFAULT_BETAS = (0.001, 0.01, 0.1)


@register
class HIB(HeadMethod):
    name = "hib"
    tuned = {"beta": DEFAULT_BETAS}
    distributed = True

    def __init__(
        self,
        beta: float = 0.1,
        epochs: int = 2,
        lr: float = 1.0,  # Adam on alpha, as IBA fits its per-pixel alphas
        plateau_tol: float = 1e-3,
        warmup: float = 0.0,  # fraction of the fit over which beta rises from 0 (BetaWarmup)
        alpha_per: str = "channel",  # or "head": one alpha per head (HeadBottleneck)
        budget: float | None = None,  # target pruned fraction (BudgetPenalty); None: every head
        **common,
    ):
        super().__init__(**common)
        self.beta, self.epochs, self.lr = beta, epochs, lr
        self.plateau_tol = plateau_tol
        self.warmup, self.alpha_per = BetaWarmup.check(warmup), check_alpha_per(alpha_per)
        self.budget = budget
        self.penalty = CapacityPenalty() if budget is None else BudgetPenalty(budget)
        self.history: list[float] = []
        self.betas: list[float] = []  # beta at each step of the last fit

    def options(self) -> dict:
        variants = {"warmup": self.warmup, "alpha_per": self.alpha_per, "budget": self.budget}
        return {
            **super().options(),
            "beta": self.beta,
            "epochs": self.epochs,
            "lr": self.lr,
            **variants,
        }

    def score(self, model: TaskModel, data: Dataset) -> torch.Tensor:
        model.eval()
        bottleneck = HeadBottleneck(model.heads(), alpha_per=self.alpha_per)
        optimizer = torch.optim.Adam([bottleneck.alpha], lr=self.lr)
        generator = torch.Generator().manual_seed(self.seed)
        passes = self.passes(self.epochs, data)
        per_epoch = math.ceil(min(self.clips, len(data)) / self.batch_size)
        schedule = BetaWarmup(self.beta, self.warmup, passes * per_epoch)
        alive = model.heads().alive()
        self.history, self.betas = [], []
        steps, settled = 0, 0  # settled: the first epoch that starts with beta at full
        for epoch in range(passes):
            if not schedule.done(steps):
                settled = epoch + 1
            cap_sum, count, loss_sum = torch.zeros(model.heads().shape), 0, 0.0
            batches = self.batches(model, data, epoch)
            for batch in tqdm(
                batches, desc=f"hib epoch {epoch + 1}", leave=False, disable=not self.progress
            ):
                with bottleneck.attached(generator, batch.part):
                    task_loss = model.loss(batch)
                capacity = bottleneck.capacity()
                self.betas.append(schedule(steps))
                loss = task_loss + self.betas[-1] * self.penalty(capacity, alive)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.world.reduce_gradients([bottleneck.alpha], batch.part)
                optimizer.step()
                cap_sum += capacity.detach().cpu() * batch.counted
                loss_sum += loss.item() * batch.counted
                count += batch.counted
                steps += 1
            cap_sum = self.world.sum(cap_sum)  # every process's clips
            loss_sum, count = self.world.sum_floats(loss_sum, count)
            self.history.append(loss_sum / max(count, 1))
            if steps >= self.min_steps and self._plateaued(settled):
                break
        return cap_sum / max(count, 1)

    def _plateaued(self, settled: int) -> bool:
        """The epoch loss improved by less than plateau_tol (relative) over the one before;
        only epochs from `settled` on count (a warming beta makes earlier losses lower)."""
        if len(self.history) - settled < 2:
            return False
        before, now = self.history[-2], self.history[-1]
        return before - now < self.plateau_tol * abs(before)
