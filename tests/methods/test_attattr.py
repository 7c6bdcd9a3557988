"""What attattr rests on: a head's context is its attention map times its value states, C = A V.

Scaling a map by alpha then scales the context by alpha, so attattr can integrate along the
map's path while touching only the context, on every upstream.
"""

from pathlib import Path

import pytest
import torch
from torch.utils.data import TensorDataset

from hib.downstream import UtteranceClassifier
from hib.heads import Heads
from hib.methods.attattr import AttAttr
from hib.upstream import Upstream, load_upstream
from hib.upstream.whisper import TINY_EN
from tests.methods.reference_attattr import reference_scores
from tests.toy import toy_data, trained_toy_model


def assert_context_is_map_times_values(heads: Heads, waves: torch.Tensor) -> None:
    with torch.no_grad(), heads.capture() as contexts, heads.capture_values() as values:
        maps = heads.attention_maps(waves)
    for layer, attn in enumerate(maps):
        assert values[layer][0].shape[2] == attn.shape[1]
        expected = torch.einsum("bhts,bshd->bthd", attn, values[layer][0])
        assert torch.allclose(contexts[layer][0], expected, atol=1e-5)


def test_context_is_map_times_values(tiny_upstream: Upstream):
    waves = 0.1 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(0))
    assert_context_is_map_times_values(Heads(tiny_upstream), waves)


def test_context_is_map_times_values_on_the_toy():
    model = trained_toy_model(num_heads=4)
    assert_context_is_map_times_values(model.heads(), toy_data(4)[0])


def _ks_model(upstream: Upstream) -> UtteranceClassifier:
    torch.manual_seed(0)
    return UtteranceClassifier.build(upstream, 3)


@pytest.mark.parametrize("pruned", [False, True])
def test_cached_layer_inputs_give_the_reference_scores(tiny_upstream: Upstream, pruned: bool):
    """Starting each step from its layer's cached input reproduces the whole-model steps."""
    model = _ks_model(tiny_upstream)
    if pruned:  # a layer without heads, and one with a gap
        model.head_stats = model.heads().fit_stats(iter([_waves(4)]), max_clips=4)
        model.heads().prune(torch.tensor([[False] * 4, [True, False, True, True]]))
    data = TensorDataset(_waves(4), torch.tensor([0, 1, 2, 1]))
    method = AttAttr(steps=3, clips=4, batch_size=2)
    expected = reference_scores(method, model, data)
    torch.testing.assert_close(method.score(model, data), expected, rtol=1e-5, atol=1e-7)


def test_cached_layer_inputs_give_the_reference_scores_on_tiny_en(whisper_cache_dir: Path):
    model = _ks_model(load_upstream(TINY_EN, cache_dir=whisper_cache_dir))
    data = TensorDataset(_waves(2), torch.tensor([0, 1]))
    method = AttAttr(steps=2, clips=2, batch_size=2)
    expected = reference_scores(method, model, data)
    torch.testing.assert_close(method.score(model, data), expected, rtol=1e-5, atol=1e-7)


def _waves(n: int) -> torch.Tensor:
    return 0.1 * torch.randn(n, 16000, generator=torch.Generator().manual_seed(0))
