"""Accuracy of a KS model on a split, overall and per class, with or without a head mask.

A masked evaluation runs the *physically* pruned model (heads.Heads.prune: the same outputs as
the mean-fill mask within float rounding, and fewer operations), and with a `LayerCache` it
starts from the deepest unmasked layer input the mask cannot change.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from contextlib import nullcontext
from dataclasses import asdict, dataclass

import torch
from tqdm import tqdm

from hib.data.speech_commands import CLASSES, KSDataset
from hib.downstream import KSModel
from hib.layer_cache import LayerCache, fixed_batches, has_context_hooks
from hib.precision import autocast


@dataclass
class EvalResult:
    accuracy: float
    n: int
    per_class: dict[str, float]

    def to_dict(self) -> dict:
        return asdict(self)


def first_changed_layer(model: KSModel, mask: torch.Tensor | None) -> int:
    """The first layer with a head the mask removes (n_layers when it removes none)."""
    heads = model.heads()
    if mask is not None:
        for layer, kept in enumerate(heads.kept):
            if not mask[layer, kept].all():
                return layer
    return heads.n_layers


def pruned_model(model: KSModel, mask: torch.Tensor | None, fill: str = "mean") -> KSModel:
    """`model` itself when the mask removes nothing, else a physically pruned copy of it
    (the task head is shared; only the upstream is copied)."""
    if first_changed_layer(model, mask) == model.heads().n_layers:
        return model
    pruned = KSModel(copy.deepcopy(model.upstream), model.head)
    pruned.head_stats = model.head_stats
    pruned.heads().prune(mask, fill)
    return pruned


@torch.no_grad()
def predict(
    model: KSModel,
    dataset: KSDataset,
    batch_size: int = 64,
    progress: bool = False,
    precision: str = "float32",
    mask: torch.Tensor | None = None,
    fill: str = "mean",
    cache: LayerCache | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted labels, true labels) over the whole dataset, in order, at a resolved precision.

    `mask` (L, H) keep-mask: removed heads pass `fill`. Under another head hook (inside
    `Heads.gated` etc.) the mask is a hook too and nothing is cached: the features are not the
    unmasked ones then.
    """
    model.eval()
    if has_context_hooks(model.upstream):
        masking = model.heads().masked(mask, fill) if mask is not None else nullcontext()
        with masking:
            return _predict(model, _layer0_batches(model, dataset, batch_size), progress, precision)
    runner = pruned_model(model, mask, fill)
    entry = None
    if cache is not None:
        entry = cache.get(model.upstream, dataset, precision, batch_size)
    if entry is None:
        return _predict(runner, _layer0_batches(runner, dataset, batch_size), progress, precision)
    return _predict(runner, entry.batches(first_changed_layer(model, mask)), progress, precision)


def _layer0_batches(model: KSModel, dataset: KSDataset, batch_size: int) -> Iterator[tuple]:
    for waves, *rest in fixed_batches(dataset, batch_size):
        yield [model.upstream.embed(waves)], rest


def _predict(
    model: KSModel, batches: Iterable[tuple], progress: bool, precision: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Finish each batch's forward from its known layer inputs; (predictions, labels)."""
    preds, labels = [], []
    with autocast(precision):
        for states, (y, *_) in tqdm(batches, desc="eval", disable=not progress, leave=False):
            hidden = model.upstream.forward_from(states).hidden_states
            preds.append(model.head(hidden).float().argmax(dim=-1))
            labels.append(y)
    if not preds:
        return torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long)
    return torch.cat(preds), torch.cat(labels)


def score_predictions(preds: torch.Tensor, labels: torch.Tensor) -> EvalResult:
    per_class = {}
    for idx, name in enumerate(CLASSES):
        mask = labels == idx
        if mask.any():
            per_class[name] = (preds[mask] == idx).float().mean().item()
    n = len(labels)
    accuracy = (preds == labels).float().mean().item() if n else float("nan")
    return EvalResult(accuracy=accuracy, n=n, per_class=per_class)


def evaluate(model: KSModel, dataset: KSDataset, *args, **kwargs) -> EvalResult:
    """`predict`'s arguments; accuracy overall and per class."""
    return score_predictions(*predict(model, dataset, *args, **kwargs))
