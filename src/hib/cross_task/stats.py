"""The numbers of the cross-task view, from score matrices and curves alone (no model).

- `rank_normalise`: a task's scores as ranks in [0, 1], so capacities in bits and accuracy drops
  meet on one scale (heatmaps, the joint ranking);
- `spearman` and `spearman_ci`: rank correlation between tasks, with a bootstrap over heads;
- `layer_share`: the share of a task's total contribution in each layer;
- `retention`: a metric value relative to the unpruned one, larger = more kept, for either
  direction of metric;
- `top_heads`: the heads every task ranks in its top quarter, and those only one task does.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy.stats import rankdata, spearmanr

from hib.prune import n_to_prune, point_value, prune_mask
from hib.tasks.base import Metric

BOOTSTRAP = {"resamples": 1000, "level": 0.95, "seed": 0}
TOP_SHARE = 0.25


def rank_normalise(scores: np.ndarray) -> np.ndarray:
    """Scores -> their ranks scaled to [0, 1] (0 = least; ties share their mean rank)."""
    scores = np.asarray(scores, dtype=float)
    ranks = (rankdata(scores.ravel()) - 1) / max(scores.size - 1, 1)
    return ranks.reshape(scores.shape)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman correlation of two score matrices over heads (0 where one is constant)."""
    rho = spearmanr(np.ravel(a), np.ravel(b)).statistic
    return float(rho) if np.isfinite(rho) else 0.0


def spearman_ci(
    scores: list[np.ndarray],
    resamples: int = BOOTSTRAP["resamples"],
    level: float = BOOTSTRAP["level"],
    seed: int = BOOTSTRAP["seed"],
) -> list[list[list[float]]]:
    """[i][j] = [lo, hi]: the percentile interval of Spearman(scores[i], scores[j]) over
    bootstrap resamples of the heads (the same `resamples` draws of L*H heads with replacement
    for every pair, from a fixed seed).

    Resamples where a task's scores come out constant (no correlation defined) are left out.
    A skewed bootstrap distribution can put the estimate just outside its percentile interval;
    the interval is then widened to reach it, so that it always holds the number in the table.
    """
    flat = np.stack([np.ravel(s).astype(float) for s in scores])  # (T, N)
    n = flat.shape[1]
    idx = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    ranks = rankdata(flat[:, idx], axis=2)  # (T, B, N)
    centred = ranks - ranks.mean(axis=2, keepdims=True)
    norm = np.sqrt((centred**2).sum(axis=2))  # (T, B)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pairs: handled below
        rho = np.einsum("abn,cbn->acb", centred, centred) / (norm[:, None] * norm[None, :])
        tail = 100 * (1 - level) / 2
        lo, hi = np.nanpercentile(rho, [tail, 100 - tail], axis=2)
    out = []
    for i, a in enumerate(scores):
        row = []
        for j, b in enumerate(scores):
            point = spearman(a, b)
            low, high = (point, point) if np.isnan(lo[i, j]) else (float(lo[i, j]), float(hi[i, j]))
            row.append([max(min(low, point), -1.0), min(max(high, point), 1.0)])
        out.append(row)
    return out


def layer_share(scores: np.ndarray) -> list[float]:
    """Each layer's share of the task's total contribution (sums to 1).

    Scores are clipped at 0, not rank-normalised: ranks spread every task evenly over the heads
    (each layer would get about 1/L), while the question is how much of the contribution sits
    at each depth, so magnitudes must count. HIB capacities are never negative, so they are
    used as they are; a negative ablation score means the task did better without the head,
    which contributes nothing (shifting every score by the most negative one instead would make
    the shares hinge on one noisy head). Where nothing is positive, each head counts the same.
    """
    scores = np.clip(np.asarray(scores, dtype=float), 0, None)
    if scores.sum() <= 0:
        scores = np.ones_like(scores)
    return (scores.sum(axis=1) / scores.sum()).tolist()


def retention(value: float | None, unpruned: float | None, metric: Metric) -> float | None:
    """How much of the unpruned metric is kept: 1 = as unpruned, 0 = nothing left.

    Accuracy (higher is better): value / unpruned. An error rate (WER, lower is better) is
    turned into its accuracy first, 1 - WER, and treated the same:
    (1 - value) / (1 - unpruned); for a small unpruned WER this is close to
    1 - (value - unpruned), the WER points lost, and unlike unpruned / value it does not make
    a change from 2 % to 4 % WER look like half the model gone. Clipped at 0 below (a WER above
    1, a looping decoder, keeps nothing); not clipped above, so a pruning that helps shows as
    above 1. None where there is nothing to retain (unpruned accuracy 0, or WER >= 1).
    """
    if value is None or unpruned is None:
        return None
    kept, base = (value, unpruned) if metric.higher_is_better else (1 - value, 1 - unpruned)
    if base <= 0:
        return None
    return max(kept, 0.0) / base


def retention_curve(curve: list[dict] | None, unpruned: float | None, metric: Metric) -> list:
    """[[ratio, retention], ...] of a pruning curve (points without a retention left out)."""
    points = [[p["ratio"], retention(point_value(p), unpruned, metric)] for p in curve or []]
    return [p for p in points if p[1] is not None]


def top_heads(scores: np.ndarray, share: float = TOP_SHARE) -> set[tuple[int, int]]:
    """The (layer, head) of the `share` highest-scored heads (at least one), ties broken as
    pruning breaks them (`prune_mask`: the top quarter is what pruning 75 % would keep)."""
    scores = np.asarray(scores, dtype=float)
    keep = max(n_to_prune(share, scores.size), 1)
    mask = prune_mask(torch.from_numpy(scores), scores.size - keep)
    return {(int(layer), int(head)) for layer, head in torch.nonzero(mask).tolist()}


def shared_and_only_top(
    scores: dict[str, np.ndarray], share: float = TOP_SHARE
) -> tuple[list[list[int]], dict[str, list[list[int]]]]:
    """The heads in every task's top `share`, and per task those in no other task's."""
    tops = {task: top_heads(s, share) for task, s in scores.items()}
    shared = set.intersection(*tops.values())
    only = {
        task: sorted(top - set().union(*(t for other, t in tops.items() if other != task)))
        for task, top in tops.items()
    }
    return [list(h) for h in sorted(shared)], {t: [list(h) for h in hs] for t, hs in only.items()}
