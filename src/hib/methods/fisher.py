"""fisher: the diagonal Fisher information of each head's mask (Kwon et al. 2022), and their
mask rearrangement within a layer.

Kwon et al. ("A Fast Post-Training Pruning Framework for Transformers", NeurIPS 2022) put a
mask variable m on every head and approximate the loss increase of a mask by its second-order
term, L(m) - L(1) ~ 1/2 (1 - m)^T F (1 - m), with F the empirical Fisher information of the
mask variables, F = E_x[g_x g_x^T], g_x = dL_x/dm at m = 1 (the gradient term vanishes at a
converged model). Here the mask variable is the gate of `Heads.gated` (a closed gate passes
the head's training mean, so g_x = sum_{t,d} (C - mean) dL_x/dC', as in taylor), g_x comes per
example from one backward per batch of the summed loss (`taylor.gate_gradients`), and a head's
score is its diagonal entry E_x[(dL_x/dg)^2]. `Fisher.blocks` keeps, after `score`, F
restricted to the heads of each layer, (L, H, H) on the original grid (zero rows and columns
for heads removed physically), stored by `Run.score` beside the scores (`extras`).

Mask rearrangement (`hib prune --method fisher --rearrange`, `Fisher.rearrange`): the pruning
the diagonal ranking chooses decides how many heads each layer keeps; within each layer,
`fisher_rearranged_mask` then re-chooses which ones, minimising the layer block's quadratic
form, so that heads whose removals interact (F_ij != 0) are weighed together (F is taken as
block-diagonal: no interaction across layers). A layer is solved exactly by enumerating the
subsets while there are at most `EXACT_SUBSETS` of them (12 heads: at most 924; 16 heads:
12,870), else (Whisper large's 20 heads near half pruned) by greedy insertion and pairwise
swaps, never worse than the diagonal ranking's choice.

Where this heads-only version differs from their FFN + heads setting: no FFN neurons are masked
(F has only head entries); there is no FLOPs or latency constraint, so their constrained mask
search becomes the plain global ranking by the diagonal at the pruned fraction `hib prune` asks
for (with every head costing the same, keeping the heads of largest diagonal is what their
search does for a given number of heads); a removed head passes its training mean instead of
zero; their third step, mask tuning (re-fitting the kept heads' mask values by layer-wise
least squares on the layer outputs), is not done.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import torch
from torch.utils.data import Dataset

from hib.methods.base import HeadMethod
from hib.methods.registry import register
from hib.methods.taylor import gate_gradients
from hib.tasks.base import TaskModel

EXACT_SUBSETS = 100_000
"""Within a layer, the rearrangement enumerates every subset of heads to remove while there are
at most this many (C(20, 10) = 184,756 would not be)."""


@register
class Fisher(HeadMethod):
    name = "fisher"
    rearrange_extras = ("blocks",)
    distributed = True

    def __init__(self, **common):
        super().__init__(**common)
        self.blocks: torch.Tensor | None = None  # (L, H, H) per-layer blocks of F, after score

    def score(self, model: TaskModel, data: Dataset) -> torch.Tensor:
        model.eval()
        heads = model.heads()
        fill = heads.fill_values("mean")
        sums = [torch.zeros(len(kept), len(kept), dtype=torch.float64) for kept in heads.kept]
        count = 0
        for batch in self.counted_batches(model, data):
            for layer, grad in gate_gradients(model, heads, batch, fill).items():
                grad = grad.detach().double()  # (B, h)
                sums[layer] += (grad.T @ grad).cpu()
            count += len(batch)
        sums = [self.world.sum(block) for block in sums]  # every process's clips
        (count,) = self.world.sum_floats(count)
        blocks = torch.zeros(*heads.shape, heads.n_heads, dtype=torch.float64)
        for layer, kept in enumerate(heads.kept):
            index = torch.tensor(kept, dtype=torch.long)
            blocks[layer, index[:, None], index[None, :]] = sums[layer] / max(count, 1)
        self.blocks = blocks
        return blocks.diagonal(dim1=1, dim2=2).float()  # zero for heads removed physically

    def extras(self) -> dict[str, torch.Tensor]:
        return {} if self.blocks is None else {"blocks": self.blocks}

    @classmethod
    def rearrange(
        cls, extras: dict[str, torch.Tensor], mask: torch.Tensor, alive: torch.Tensor
    ) -> torch.Tensor:
        """Kwon et al.'s rearrangement of the ranked `mask`: each layer keeps as many of its
        existing heads, re-chosen by `fisher_rearranged_mask`; entries of heads removed
        physically stay as `mask` has them, so the pruned count is the ranking's too."""
        mask, alive = mask.bool(), alive.bool()
        kept = fisher_rearranged_mask(extras["blocks"], (mask & alive).sum(1), alive)
        return kept | (mask & ~alive)


def fisher_rearranged_mask(
    blocks: torch.Tensor,
    keep_counts: Sequence[int] | torch.Tensor,
    alive: torch.Tensor | None = None,
    exact_limit: int = EXACT_SUBSETS,
) -> torch.Tensor:
    """(L, H) bool keep-mask with keep_counts[l] heads in layer l, chosen among its `alive`
    heads (default: all) so that the removed set R minimises sum_{i,j in R} F_l[i, j], the
    layer's share of Kwon et al.'s (1 - m)^T F (1 - m).

    `blocks`: (L, H, H), e.g. `Fisher.blocks`. `Fisher.rearrange` passes the counts of the
    mask the ranking gives, `(mask & alive).sum(1)`.
    """
    n_layers, n_heads, _ = blocks.shape
    alive = torch.ones(n_layers, n_heads, dtype=torch.bool) if alive is None else alive.bool()
    mask = torch.zeros(n_layers, n_heads, dtype=torch.bool)
    for layer in range(n_layers):
        candidates = alive[layer].nonzero().flatten()
        keep = int(keep_counts[layer])
        if not 0 <= keep <= len(candidates):
            raise ValueError(f"layer {layer}: cannot keep {keep} of its {len(candidates)} heads")
        block = blocks[layer][candidates[:, None], candidates[None, :]].double()
        removed = set(_best_removal(block, len(candidates) - keep, exact_limit))
        kept = [int(c) for i, c in enumerate(candidates) if i not in removed]
        mask[layer, kept] = True
    return mask


def removal_cost(block: torch.Tensor, removed: Sequence[int]) -> float:
    """sum_{i,j in removed} block[i, j]: twice the second-order loss increase of the removal."""
    index = torch.tensor(list(removed), dtype=torch.long)
    return float(block[index[:, None], index[None, :]].sum())


def _best_removal(block: torch.Tensor, n_remove: int, exact_limit: int) -> list[int]:
    n = block.shape[0]
    if n_remove == 0:
        return []
    if math.comb(n, n_remove) <= exact_limit:
        subsets = torch.tensor(list(itertools.combinations(range(n), n_remove)))
        costs = block[subsets[:, :, None], subsets[:, None, :]].sum(dim=(1, 2))
        return subsets[int(costs.argmin())].tolist()  # ties: the first subset in order
    diagonal = block.diagonal().argsort(stable=True)[:n_remove].tolist()
    starts = [diagonal, _greedy_removal(block, n_remove)]
    return min((_swapped(block, start) for start in starts), key=lambda r: removal_cost(block, r))


def _greedy_removal(block: torch.Tensor, n_remove: int) -> list[int]:
    """Add to the removed set, one at a time, the head whose addition costs least."""
    removed: list[int] = []
    for _ in range(n_remove):
        rest = [i for i in range(block.shape[0]) if i not in removed]
        rises = [block[i, i] + 2 * block[i, removed].sum() for i in rest]
        removed.append(rest[int(torch.stack(rises).argmin())])
    return removed


def _swapped(block: torch.Tensor, removed: list[int]) -> list[int]:
    """Local search: swap a removed and a kept head while the best swap lowers the cost."""
    removed = list(removed)
    cost = removal_cost(block, removed)
    for _ in range(block.shape[0] ** 2):  # each swap lowers the cost: this bound is never met
        kept = [i for i in range(block.shape[0]) if i not in removed]
        trials = [([*removed[:k], j, *removed[k + 1 :]]) for k in range(len(removed)) for j in kept]
        if not trials:
            break
        costs = [removal_cost(block, trial) for trial in trials]
        best = min(range(len(trials)), key=costs.__getitem__)
        if costs[best] >= cost - 1e-12 * max(abs(cost), 1.0):
            break
        removed, cost = trials[best], costs[best]
    return sorted(removed)
