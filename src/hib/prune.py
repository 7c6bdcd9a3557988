"""Pruning by score: rank heads globally, remove the lowest, measure what is left.

`curve` entries are {"ratio": pruned/all, "pruned": int, <metric name>: float}, e.g.
"accuracy" or "wer". Without `refit` the task head stays as trained (the paper's protocol);
with `refit` the task head is re-trained on the pruned model's features, reported as a separate
curve.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from hib.errors import HibError
from hib.evaluate import evaluate, pruned_model
from hib.layer_cache import LayerCache
from hib.precision import autocast
from hib.tasks.base import Task, TaskModel

if TYPE_CHECKING:
    from hib.compensate import Compensation

MAX_RATIOS = 10_000  # points of one sweep; more is a typo in the step


def parse_ratios(spec: str) -> list[float]:
    """'0:1:0.05' -> [0.0, 0.05, ..., 1.0]; '0.2,0.4' -> [0.2, 0.4]."""
    try:
        if ":" in spec:
            start, stop, step = (float(x) for x in spec.split(":"))
            if step <= 0:
                raise ValueError
            n = int(round((stop - start) / step))
            if n > MAX_RATIOS:
                raise HibError(f"ratios '{spec}': more than {MAX_RATIOS} points")
            values = [round(start + i * step, 6) for i in range(n + 1)]
        else:
            values = [float(x) for x in spec.split(",")]
    except (ValueError, OverflowError):
        raise HibError(f"ratios '{spec}': expected start:stop:step or a comma list") from None
    if not values:
        raise HibError(f"ratios '{spec}': no ratio (stop below start?)")
    for r in values:
        check_ratio(r)
    return values


def check_ratio(ratio: float) -> float:
    """A pruned fraction lies in [0, 1]; 1.5 or -0.1 (or NaN) is a typo, not a request."""
    if not 0 <= ratio <= 1:
        raise HibError(f"ratio {ratio:g}: a pruned fraction must lie in [0, 1]")
    return ratio


def n_to_prune(ratio: float, n_heads: int) -> int:
    return int(round(ratio * n_heads))


def prune_mask(scores: torch.Tensor, n_prune: int, min_per_layer: int = 0) -> torch.Tensor:
    """(L, H) keep-mask removing the n_prune lowest-scored heads, keeping min_per_layer each.

    Ties break by position (layer-major), so a ranking is fully determined by the scores.
    """
    n_layers, n_heads = scores.shape
    mask = torch.ones(n_layers, n_heads, dtype=torch.bool)
    order = np.argsort(scores.flatten().double().numpy(), kind="stable")
    left = [n_heads] * n_layers
    removed = 0
    for flat in order:
        if removed == n_prune:
            break
        layer, head = divmod(int(flat), n_heads)
        if left[layer] <= min_per_layer:
            continue
        mask[layer, head] = False
        left[layer] -= 1
        removed += 1
    return mask


def sweep(
    model: TaskModel,
    dataset: Dataset,
    scores: torch.Tensor,
    ratios: list[float],
    fill: str = "mean",
    min_per_layer: int = 0,
    rescore: Callable[[torch.Tensor], torch.Tensor] | None = None,
    evaluate_masked: Callable[[torch.Tensor], float] | None = None,
    precision: str = "float32",
    cache: LayerCache | None = None,
) -> list[dict]:
    """The model's metric at each pruned fraction, evaluated at `precision` (with `cache`, from the
    deepest layer input each mask leaves unchanged).

    rescore: iterative pruning; called with the current mask, returns fresh scores of the model
    without the mask's heads (`Run.rescorer` prunes a copy; applying the mask is rescore's own
    part); heads already removed stay removed. evaluate_masked: overrides how a mask is
    scored (the re-fit curve and the memoised test accuracy use it).
    """
    heads = model.heads()
    total = heads.n_layers * heads.n_heads
    mask = torch.ones(heads.shape, dtype=torch.bool)
    curve = []
    for ratio in sorted(ratios):
        n = n_to_prune(ratio, total)
        if rescore is None:
            mask = prune_mask(scores, n, min_per_layer)
        else:
            fresh = rescore(mask)
            fresh = torch.where(mask, fresh, torch.full_like(fresh, -torch.inf))
            mask = prune_mask(fresh, n, min_per_layer)
        if evaluate_masked is not None:
            value = evaluate_masked(mask)
        else:
            value = evaluate(
                model, dataset, precision=precision, mask=mask, fill=fill, cache=cache
            ).value
        curve.append({"ratio": ratio, "pruned": int((~mask).sum()), model.metric.name: value})
    return curve


def point_value(point: dict) -> float:
    """A curve point's metric value, whatever the metric's name."""
    (value,) = (v for k, v in point.items() if k not in ("ratio", "pruned"))
    return value


def curve_area(curve: list[dict], max_ratio: float = 0.9) -> float:
    """Mean metric over the curve's pruned fractions from 0 to max_ratio."""
    points = [point_value(p) for p in curve if p["ratio"] <= max_ratio + 1e-9]
    return float(np.mean(points)) if points else float("nan")


def refit_head(
    task: Task,
    model: TaskModel,
    mask: torch.Tensor,
    train_set: Dataset,
    fill: str = "mean",
    precision: str = "float32",
    compensation: Compensation | None = None,
) -> TaskModel:
    """A copy of the model whose task head is re-trained on the pruned model's features (the
    compensated pruned model's, with `compensation`).

    The upstream is frozen, so the pruned hidden states of `config.refit.clips` training
    batches (augmented as in training) are computed once (a forward without gradients, so at
    the resolved evaluation `precision`; kept as pooled features where the head allows:
    hib.frozen) and the head trains `config.refit.epochs` epochs on them in float32. The
    upstream is shared with `model`; the features come from its physically pruned copy.
    """
    if not task.trains_head:
        raise HibError(
            f"task {task.name}: its head is the pretrained model's own; nothing to re-fit"
        )
    config = task.config
    refit = model.replaced(head=copy.deepcopy(model.head))
    pruned = pruned_model(model, mask, fill, compensation)
    batches = task.train_batches(train_set, model, epoch=10_000, clips=config.refit.clips)
    pooled = model.supports_features  # keep each clip's pooled features, not every state
    features = []
    with torch.no_grad(), autocast(precision, model.device.type):
        for batch in batches:
            hidden = pruned.upstream(batch.waves).hidden_states
            kept = pruned.features(hidden, batch) if pooled else hidden
            features.append((_to_float(kept), batch))
    optimizer = torch.optim.AdamW(refit.head.parameters(), lr=config.refit.lr)
    generator = torch.Generator().manual_seed(config.seed)
    refit.head.train()
    for _ in range(config.refit.epochs):
        for i in torch.randperm(len(features), generator=generator).tolist():
            kept, batch = features[i]
            outputs = (refit.outputs_of_features if pooled else refit.outputs)(kept, batch)
            loss = refit.loss_of(outputs, batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    refit.eval()
    return refit


def _to_float(states: torch.Tensor | tuple[torch.Tensor, ...]) -> torch.Tensor | list[torch.Tensor]:
    if isinstance(states, torch.Tensor):
        return states.float()
    return [h.float() for h in states]
