"""A task model's metric on a split (accuracy, WER ...), with or without a head mask.

A masked evaluation runs the *physically* pruned model (heads.Heads.prune: the same outputs as
the mean-fill mask within float rounding, and fewer operations), and with a `LayerCache` it
starts from the deepest unmasked layer input the mask cannot change, or deeper, from the last
mask evaluated on the same clips where the two masks agree further (a sweep's nested masks).
A `Compensation` (hib.compensate) is folded into that pruned copy; it leaves the layers before
the mask's first change as they are, so the cache serves it too.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from hib.layer_cache import LayerCache, has_context_hooks
from hib.precision import autocast
from hib.tasks.base import Batch, EvalResult, TaskModel

if TYPE_CHECKING:
    from hib.compensate import Compensation
    from hib.config import Config


def eval_batch_size(config: Config, model: TaskModel) -> int:
    """Clips per no-gradient forward: eval.batch_size, else the task model's. One value for a
    run's every evaluation, since padded batches of unequal clips (SID, IC, ASR) change what an
    encoder without an attention mask computes."""
    return config.eval.batch_size or model.eval_batch_size


def first_changed_layer(model: TaskModel, mask: torch.Tensor | None) -> int:
    """The first layer with a head the mask removes (n_layers when it removes none)."""
    heads = model.heads()
    if mask is not None:
        for layer, kept in enumerate(heads.kept):
            if not mask[layer, kept].all():
                return layer
    return heads.n_layers


def pruned_model(
    model: TaskModel,
    mask: torch.Tensor | None,
    fill: str = "mean",
    compensation: Compensation | None = None,
) -> TaskModel:
    """`model` itself when the mask removes nothing, else a copy whose upstream is physically
    pruned, with `compensation` (solved for this mask) folded in (the task head is shared; only
    the upstream is copied)."""
    mask = _mask_of(mask, compensation)
    if first_changed_layer(model, mask) == model.heads().n_layers:
        return model
    pruned = model.replaced(upstream=copy.deepcopy(model.upstream))
    if compensation is None:
        pruned.heads().prune(mask, fill)
    else:
        compensation.prune(pruned.heads())
    return pruned


def _mask_of(mask: torch.Tensor | None, compensation: Compensation | None) -> torch.Tensor | None:
    """The mask to apply: `mask`, which a compensation must have been solved for."""
    if compensation is None:
        return mask
    if mask is not None and not torch.equal(mask.to(torch.bool), compensation.mask):
        raise ValueError("the compensation was solved for another mask")
    return compensation.mask


@torch.no_grad()
def predict(
    model: TaskModel,
    dataset: Dataset,
    batch_size: int = 64,
    progress: bool = False,
    precision: str = "float32",
    mask: torch.Tensor | None = None,
    fill: str = "mean",
    cache: LayerCache | None = None,
    compensation: Compensation | None = None,
) -> tuple[list[Any], list[Batch]]:
    """(per-batch predictions, the batches' targets) over the whole dataset, in order, at a
    resolved precision.

    `mask` (L, H) keep-mask: removed heads pass `fill`. Under another head hook (inside
    `Heads.gated` etc.) the mask is a hook too and nothing is cached: the features are not the
    unmasked ones then. The same for heads outside the upstream (decoder scope), which the
    physically pruned upstream copy does not reach. `compensation` (hib.compensate, solved for
    `mask`, or alone) is applied on top of the mask.
    """
    model.eval()
    mask = _mask_of(mask, compensation)
    if has_context_hooks(model.upstream) or model.head_source() is not model.upstream:
        # under other hooks, or heads beyond the upstream (decoder): masks as hooks, no cache
        with ExitStack() as hooks:
            if mask is not None:
                hooks.enter_context(model.heads().masked(mask, fill))
            if compensation is not None:
                hooks.enter_context(compensation.applied(model.heads()))
            return _predict(model, _layer0_batches(model, dataset, batch_size), progress, precision)
    runner = pruned_model(model, mask, fill, compensation)
    entry = None
    if cache is not None:
        entry = cache.get(model, dataset, precision, batch_size)
    if entry is None:
        return _predict(runner, _layer0_batches(runner, dataset, batch_size), progress, precision)
    first = first_changed_layer(model, mask)
    if mask is None or compensation is not None or first == entry.depth:
        # unmasked, compensated (a compensation re-solves every layer from the first change
        # on, so another mask's states are not this one's) or nothing to run: from the entry
        return _predict(runner, entry.batches(first), progress, precision)
    last = entry.last  # only ever kept with every layer input in memory (can_resume)
    shared = -1 if last is None else last.shared_layers(mask, model.heads().kept)
    if shared > first:  # the last mask's states reach deeper: resume there
        pairs = zip(last.states, entry.extras, strict=True)
        batches = ((states[: shared + 1], b) for states, b in pairs)
    else:
        batches = entry.batches(first)
    raw: list[list[torch.Tensor]] | None = [] if cache.can_resume(entry) else None
    predictions = _predict(runner, batches, progress, precision, keep=raw)
    cache.remember(entry, mask, raw)
    return predictions


def _layer0_batches(model: TaskModel, dataset: Dataset, batch_size: int) -> Iterator[tuple]:
    for batch in model.batches(dataset, batch_size):
        yield [model.upstream.embed(batch.waves)], batch.without_waves()


def _predict(
    model: TaskModel,
    batches: Iterable[tuple],
    progress: bool,
    precision: str,
    keep: list[list[torch.Tensor]] | None = None,
) -> tuple[list[Any], list[Batch]]:
    """Finish each batch's forward from its known layer inputs; (predictions, batches). With
    `keep`, each batch's raw states (inputs of layers 0..n_layers) are appended to it."""
    preds, seen = [], []
    upstream = model.upstream
    with autocast(precision, model.device.type):
        for states, batch in tqdm(batches, desc="eval", disable=not progress, leave=False):
            raw = upstream.run_layers(states)
            if keep is not None:
                keep.append(raw)
            preds.append(model.predict(upstream.reported(raw), batch))
            seen.append(batch)
    return preds, seen


def evaluate(model: TaskModel, dataset: Dataset, *args, **kwargs) -> EvalResult:
    """`predict`'s arguments; the model's metric overall and its breakdown."""
    return model.summarize(*predict(model, dataset, *args, **kwargs))
