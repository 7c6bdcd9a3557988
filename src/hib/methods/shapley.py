"""shapley: each head's Shapley value in the game whose players are the heads (Held & Yang 2023).

Held & Yang ("Shapley Head Pruning", EACL 2023) value a coalition of heads by the model's
performance with only those heads; here the value of a coalition S is minus the task loss, on a
fixed subset of training clips (the first `clips` of the seeded shuffle), with the heads of S
kept and every other head passing its training mean (`Heads.masked(mask, "mean")`), so the game
is the same on every task (the loss, not a metric that may need decoding). A head's Shapley
value is its marginal contribution v(S + h) - v(S) averaged over all orders in which the heads
could join; higher = more important, and a head that hurts the task gets a negative value.

Estimated by permutation sampling with truncation (the truncated Monte Carlo scheme of Ghorbani
& Zou, run in the removal direction): per sampled order (seeded by `seed`) the heads leave the
full model one at a time, each credited with the value lost at its leaving; once the remaining
coalition is within `tolerance` x |v(all) - v(none)| of v(none), the heads still in it are
credited 0 for that order and no more forwards are run for it. Every order's credits add up
to v(all) - v(S_t) for the coalition S_t it was truncated at, so the values sum to
v(all) - v(none) within `tolerance` of that gap (exactly with tolerance 0). With `permutations`
>= n! every order is taken once: the exact Shapley values (with tolerance 0).

Cost: coalition values are memoised, so a coalition two orders share costs one forward over
the subset; `forwards` (in results.json) counts them, v(all) and v(none) included: at most
2 + permutations x (n - 1), e.g. 462 for 24 heads and 20 orders, 2,862 for 144 heads. Every
such forward starts at the first layer's input, computed once per batch beforehand (one more
pass, and that input of every clip of the subset kept in memory). The number of orders is
fixed: no adaptive stopping rule, and the sampling schedule is ours, not checked against Held &
Yang's code.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch.utils.data import Dataset

from hib.heads import Head, Heads
from hib.methods.base import HeadMethod
from hib.methods.registry import register
from hib.tasks.base import Batch, TaskModel


@register
class Shapley(HeadMethod):
    name = "shapley"

    def __init__(self, permutations: int = 20, tolerance: float = 0.01, **common):
        super().__init__(**common)
        self.permutations, self.tolerance = permutations, tolerance
        self.forwards = 0
        self.exact = False

    def options(self) -> dict:
        return {
            **super().options(),
            "permutations": self.permutations,
            "tolerance": self.tolerance,
            "forwards": self.forwards,
            "exact": self.exact,
        }

    @torch.no_grad()
    def score(self, model: TaskModel, data: Dataset) -> torch.Tensor:
        model.eval()
        heads = model.heads()
        players = list(heads)
        game = Game(model, heads, list(self.batches(model, data)))
        values = torch.zeros(heads.shape, dtype=torch.float64)
        full = heads.alive()
        top, bottom = game.value(full), game.value(torch.zeros_like(full))
        cutoff = self.tolerance * abs(top - bottom)
        orders = self.orders(players)
        for order in orders:
            coalition, current = full.clone(), top
            for head in order:
                coalition[head.layer, head.index] = False
                after = game.value(coalition)
                values[head.layer, head.index] += current - after
                current = after
                if self.tolerance > 0 and abs(current - bottom) <= cutoff:
                    break  # the heads still in the coalition are credited 0 in this order
        self.forwards = game.forwards
        return (values / max(len(orders), 1)).float()

    def orders(self, players: list[Head]) -> list[list[Head]]:
        """Every order when there are no more than `permutations`, else that many seeded draws."""
        self.exact = math.factorial(len(players)) <= self.permutations
        if self.exact:
            return [list(order) for order in itertools.permutations(players)]
        generator = torch.Generator().manual_seed(self.seed)
        return [
            [players[i] for i in torch.randperm(len(players), generator=generator)]
            for _ in range(self.permutations)
        ]


class Game:
    """Coalition (keep-mask) -> minus the mean task loss over fixed batches, memoised.

    No mask changes the input of the first layer (for Whisper's decoder heads: the encoder's
    output too), so it is computed once per batch and every coalition's forward starts there.
    """

    def __init__(self, model: TaskModel, heads: Heads, batches: list[Batch]):
        self.model, self.heads = model, heads
        self.batches = [(model.layer_inputs(batch)[:1], batch) for batch in batches]
        self.memo: dict[bytes, float] = {}

    @property
    def forwards(self) -> int:
        """Forward passes over the subset so far (one per distinct coalition)."""
        return len(self.memo)

    def value(self, coalition: torch.Tensor) -> float:
        key = (coalition & self.heads.alive()).numpy().tobytes()
        if key not in self.memo:
            total, count = 0.0, 0
            with self.heads.masked(coalition, fill="mean"):
                for inputs, batch in self.batches:
                    outputs = self.model.outputs_from(inputs, batch)
                    total += float(self.model.loss_of(outputs, batch, reduction="sum"))
                    count += len(batch)
            self.memo[key] = -total / max(count, 1)
        return self.memo[key]
