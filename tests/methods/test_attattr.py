"""What attattr rests on: a head's context is its attention map times its value states, C = A V.

Scaling a map by alpha then scales the context by alpha, so attattr can integrate along the
map's path while touching only the context, on every upstream.
"""

import torch

from hib.heads import Heads
from hib.upstream import Upstream
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
