"""The cache of unmasked layer inputs: exact, invalidated by any change, within its budget."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from hib.downstream import UtteranceClassifier
from hib.evaluate import first_changed_layer
from hib.evaluate import predict as predict_batches
from hib.layer_cache import LayerCache
from hib.prune import sweep
from hib.upstream import Upstream, load_upstream
from hib.upstream.whisper import TINY_EN

MASKS = {
    "none": lambda shape: torch.ones(shape, dtype=torch.bool),
    "last layer": lambda shape: torch.ones(shape, dtype=torch.bool).index_fill_(
        0, torch.tensor([shape[0] - 1]), False
    ),
    "one head of the first": lambda shape: torch.ones(shape, dtype=torch.bool).index_put_(
        (torch.tensor([0]), torch.tensor([1])), torch.tensor(False)
    ),
    "all": lambda shape: torch.zeros(shape, dtype=torch.bool),
}


def _model(upstream: Upstream) -> UtteranceClassifier:
    torch.manual_seed(0)
    model = UtteranceClassifier.build(upstream, 3)
    model.head_stats = model.heads().fit_stats(iter([_data(6).tensors[0]]), max_clips=6)
    return model


def _data(n: int, seed: int = 0) -> TensorDataset:
    waves = 0.1 * torch.randn(n, 16000, generator=torch.Generator().manual_seed(seed))
    return TensorDataset(waves, torch.arange(n) % 3)


def predict(*args, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted labels, true labels) of the whole dataset."""
    preds, batches = predict_batches(*args, **kwargs)
    return torch.cat(preds), torch.cat([b.targets for b in batches])


def _logits(model: UtteranceClassifier, data: TensorDataset, mask: torch.Tensor) -> torch.Tensor:
    """What the model computes with the mask as hooks, from the waveform: the plain forward."""
    with torch.no_grad(), model.heads().masked(mask):
        return model(data.tensors[0])


@pytest.mark.parametrize("mask_name", list(MASKS))
def test_cached_and_uncached_predictions_are_identical(tiny_upstream: Upstream, mask_name: str):
    model, data = _model(tiny_upstream), _data(6)
    mask = MASKS[mask_name](model.heads().shape)
    cache = LayerCache()
    uncached = predict(model, data, batch_size=4, mask=mask)
    first = predict(model, data, batch_size=4, mask=mask, cache=cache)  # builds the entry
    again = predict(model, data, batch_size=4, mask=mask, cache=cache)  # reads it
    assert torch.equal(first[0], uncached[0]) and torch.equal(again[0], uncached[0])
    assert torch.equal(first[1], data.tensors[1])
    # and the physically pruned model predicts what the mean-fill mask (as hooks) predicts
    assert torch.equal(uncached[0], _logits(model, data, mask).argmax(-1))


def test_identical_on_tiny_en_at_both_precisions(whisper_cache_dir: Path):
    model, data = _model(load_upstream(TINY_EN, cache_dir=whisper_cache_dir)), _data(4)
    mask = MASKS["one head of the first"](model.heads().shape)
    for precision in ("float32", "bfloat16"):
        cache = LayerCache()
        uncached = predict(model, data, batch_size=2, precision=precision, mask=mask)
        predict(model, data, batch_size=2, precision=precision, mask=mask, cache=cache)
        cached = predict(model, data, batch_size=2, precision=precision, mask=mask, cache=cache)
        assert torch.equal(cached[0], uncached[0])


def test_masked_forward_starts_at_the_first_changed_layer(tiny_upstream: Upstream):
    model = _model(tiny_upstream)
    shape = model.heads().shape
    assert first_changed_layer(model, None) == shape[0]
    assert first_changed_layer(model, MASKS["last layer"](shape)) == shape[0] - 1
    assert first_changed_layer(model, MASKS["one head of the first"](shape)) == 0
    entry = LayerCache().get(model, _data(6), "float32", batch_size=4)
    assert entry.depth == shape[0] and [len(s) for s, _ in entry.batches(1)] == [2, 2]


def test_invalidated_when_the_clips_upstream_or_precision_change(tiny_upstream: Upstream):
    model, cache = _model(tiny_upstream), LayerCache()
    data = _data(6)
    entry = cache.get(model, data, "float32")
    assert cache.get(model, data, "float32") is entry
    other_clips = cache.get(model, _data(6, seed=1), "float32")
    assert other_clips.key != entry.key
    assert cache.get(model, data, "bfloat16").key != entry.key
    with torch.no_grad():  # an in-place weight change (as in fine-tuning) is seen
        model.upstream.attention_blocks()[-1].v_proj.weight.mul_(2.0)
    changed = cache.get(model, data, "float32")
    assert changed.key != entry.key
    predicted = predict(model, data, mask=None, cache=cache)[0]
    assert torch.equal(predicted, predict(model, data, mask=None)[0])
    pruned = copy.deepcopy(model)  # a physically pruned copy is another upstream
    pruned.heads().prune(MASKS["last layer"](model.heads().shape))
    assert cache.get(pruned, data, "float32").key != changed.key


def test_budget_keeps_layer0_inputs_then_goes_to_disk(tiny_upstream: Upstream, tmp_path: Path):
    model, data = _model(tiny_upstream), _data(6)
    full = LayerCache().get(model, data, "float32", batch_size=4)
    layer0 = full.nbytes // (full.depth + 1)
    small = LayerCache(budget_bytes=layer0 + 1).get(model, data, "float32", 4)
    assert small.depth == 0 and small.path is None
    assert LayerCache(budget_bytes=layer0 - 1).get(model, data, "float32", 4) is None
    disk = LayerCache(budget_bytes=0, disk_dir=tmp_path).get(model, data, "float32", 4)
    assert disk.path is not None and disk.path.is_file() and disk.key in disk.path.name
    mask = MASKS["last layer"](model.heads().shape)
    expected = predict(model, data, batch_size=4, mask=mask)[0]
    for budget, where in ((layer0 + 1, None), (0, tmp_path)):
        cache = LayerCache(budget_bytes=budget, disk_dir=where)
        assert torch.equal(predict(model, data, batch_size=4, mask=mask, cache=cache)[0], expected)


def test_physical_sweep_equals_masked_sweep(tiny_upstream: Upstream):
    """sweep() evaluates physically pruned copies from the cache; hooks from the waveform
    (the old way) give the same curve."""
    model, data = _model(tiny_upstream), _data(6)
    scores = torch.arange(model.heads().n_layers * model.heads().n_heads).float()
    scores = scores.view(model.heads().shape).flip(0)  # prune the last layer first
    ratios = [0.0, 0.25, 0.5, 0.75, 1.0]

    def masked(mask: torch.Tensor) -> float:
        preds = _logits(model, data, mask).argmax(-1)
        return (preds == data.tensors[1]).float().mean().item()

    fast = sweep(model, data, scores, ratios, cache=LayerCache())
    slow = sweep(model, data, scores, ratios, evaluate_masked=masked)
    assert fast == slow


def test_a_nested_mask_resumes_from_the_last_ones_states(tiny_upstream: Upstream, monkeypatch):
    """The sweep's next mask differs from the last one only in the last layer: it runs that
    layer alone, and its raw states equal a fresh evaluation's bit for bit."""
    model, data = _model(tiny_upstream), _data(6)
    n_layers = model.heads().n_layers
    first = torch.ones(model.heads().shape, dtype=torch.bool)
    first[0, 0] = False
    nested = first.clone()
    nested[-1, 0] = False
    cache = LayerCache()
    predict(model, data, batch_size=4, mask=first, cache=cache)
    layers_run = []
    run_layer = type(model.upstream).run_layer
    monkeypatch.setattr(
        type(model.upstream),
        "run_layer",
        lambda self, index, hidden: layers_run.append(index) or run_layer(self, index, hidden),
    )
    resumed = predict(model, data, batch_size=4, mask=nested, cache=cache)
    assert set(layers_run) == {n_layers - 1}  # only the layer where the masks differ
    entry = next(iter(cache._entries.values()))
    fresh = LayerCache()
    expected = predict(model, data, batch_size=4, mask=nested, cache=fresh)
    assert torch.equal(resumed[0], expected[0])
    kept = next(iter(fresh._entries.values())).last
    assert torch.equal(entry.last.mask, nested) and len(entry.last.states) == len(kept.states)
    for ours, theirs in zip(entry.last.states, kept.states, strict=True):
        assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    # a mask that differs from the last one at layer 0 starts from the unmasked inputs again
    layers_run.clear()
    predict(model, data, batch_size=4, mask=~first | ~nested, cache=cache)
    assert min(layers_run) == 0


def test_no_room_for_the_last_masks_states_keeps_none(tiny_upstream: Upstream):
    model, data = _model(tiny_upstream), _data(6)
    entry = LayerCache().get(model, data, "float32", batch_size=4)
    cache = LayerCache(budget_bytes=entry.nbytes + 1)  # every layer input, nothing more
    mask = MASKS["one head of the first"](model.heads().shape)
    expected = predict(model, data, batch_size=4, mask=mask)[0]
    assert torch.equal(predict(model, data, batch_size=4, mask=mask, cache=cache)[0], expected)
    entry = next(iter(cache._entries.values()))
    assert entry.depth == model.heads().n_layers and entry.last is None
