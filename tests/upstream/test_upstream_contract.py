"""What heads and methods rely on, checked for tiny.en and every tiny kind alike."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import TINY_HEADS, TINY_HIDDEN, TINY_KINDS, TINY_LAYERS, make_tiny_upstream

from hib.upstream import Upstream, load_upstream
from hib.upstream.whisper import TINY_EN

SHAPES = {TINY_EN: (4, 6, 64, 384)} | {
    k: (TINY_LAYERS, TINY_HEADS, 8, TINY_HIDDEN) for k in TINY_KINDS
}
"""kind -> (layers, heads per layer, head_dim, hidden size)."""


@pytest.fixture(params=list(SHAPES))
def case(request: pytest.FixtureRequest, tmp_path: Path, whisper_cache_dir: Path):
    kind = request.param
    if kind == TINY_EN:
        return load_upstream(TINY_EN, cache_dir=whisper_cache_dir), SHAPES[kind]
    return make_tiny_upstream(kind, tmp_path), SHAPES[kind]


def _waves(batch: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return 0.1 * torch.randn(batch, 16000, generator=generator)


def test_one_second_gives_50_positions_per_layer(case: tuple[Upstream, tuple]):
    upstream, (layers, heads, _, hidden) = case
    with torch.no_grad():
        out = upstream(_waves(), output_attentions=True)
    assert len(out.hidden_states) == layers + 1
    assert all(h.shape == (2, 50, hidden) for h in out.hidden_states)
    assert len(out.attentions) == layers
    for weights in out.attentions:
        assert weights.shape == (2, heads, 50, 50)
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, heads, 50))
    assert upstream(_waves()).attentions is None


def test_attention_blocks_and_per_head_context(case: tuple[Upstream, tuple]):
    upstream, (layers, heads, head_dim, _) = case
    blocks = upstream.attention_blocks()
    assert [b.layer for b in blocks] == list(range(layers))
    assert upstream.heads_per_layer == [heads] * layers
    assert all(b.head_dim == head_dim for b in blocks)
    widths = []
    handles = [
        b.out_proj.register_forward_pre_hook(lambda _m, args: widths.append(args[0].shape[-1]))
        for b in blocks
    ]
    try:
        with torch.no_grad():
            upstream(_waves())
    finally:
        for handle in handles:
            handle.remove()
    assert widths == [heads * head_dim] * layers


def test_frozen_but_differentiable(case: tuple[Upstream, tuple]):
    upstream, _ = case
    assert not upstream.training
    assert not any(p.requires_grad for p in upstream.parameters())
    waves = _waves().requires_grad_(True)
    upstream(waves).hidden_states[-1].square().mean().backward()
    assert (
        waves.grad is not None and torch.isfinite(waves.grad).all() and waves.grad.abs().sum() > 0
    )


def test_train_mode_changes_nothing(case: tuple[Upstream, tuple]):
    """Dropout, LayerDrop and SpecAugment are off, so a parent's train() keeps features stable."""
    upstream, _ = case
    with torch.no_grad():
        expected = upstream(_waves()).hidden_states[-1]
        upstream.train()
        got = upstream(_waves()).hidden_states[-1]
    torch.testing.assert_close(got, expected)
