"""The fused attention kernel (SDPA) against the eager one: same features, same heads.

Forwards without attention weights run PyTorch's scaled_dot_product_attention; everything that
touches a head does so at out_proj's input, so it must see the same per-head context there,
and masks, gates, the bottleneck's gradients and physical pruning must give what eager gives.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from conftest import TINY_KINDS, make_tiny_upstream

from hib.heads import Heads
from hib.upstream import Upstream, load_upstream
from hib.upstream.whisper import TINY_EN

TOL = {"atol": 1e-5, "rtol": 1e-5}
KINDS = (*TINY_KINDS, TINY_EN)


@pytest.fixture(params=KINDS)
def upstream(request: pytest.FixtureRequest, tmp_path: Path, whisper_cache_dir: Path) -> Upstream:
    if request.param == TINY_EN:
        return load_upstream(TINY_EN, cache_dir=whisper_cache_dir)
    return make_tiny_upstream(request.param, tmp_path)


def _waves(batch: int = 3, seconds: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return 0.1 * torch.randn(batch, int(16000 * seconds), generator=generator)


def _with_stats(upstream: Upstream) -> Heads:
    heads = Heads(upstream)
    heads.fit_stats(iter([_waves(4)]), max_clips=4)
    return heads


def _mask(heads: Heads) -> torch.Tensor:
    """About a third of the heads off, and every head of the last layer (an inert layer)."""
    mask = torch.rand(heads.shape, generator=torch.Generator().manual_seed(3)) > 0.33
    mask[-1] = False
    return mask


def _both(upstreams: list[Upstream], run) -> tuple:
    """run() under the fused kernel, then with every upstream eager (the original path)."""
    fused = run()
    for upstream in upstreams:
        upstream.attn_implementation = "eager"
    try:
        return fused, run()
    finally:
        for upstream in upstreams:
            del upstream.attn_implementation  # back to the class default


def _assert_states_close(fused: list[torch.Tensor], eager: list[torch.Tensor]) -> None:
    assert len(fused) == len(eager)
    for a, b in zip(fused, eager, strict=True):
        torch.testing.assert_close(a, b, **TOL)


def test_fused_kernel_runs_and_weights_still_come_from_eager(upstream: Upstream):
    """No weight matrix comes out of a plain forward; asked for, weights exist and sum to 1."""
    seen: list[object] = []
    handles = [
        b.module.register_forward_hook(lambda _m, _a, out: seen.append(out[1]))
        for b in upstream.attention_blocks()
    ]
    try:
        with torch.no_grad():
            upstream(_waves())
            assert seen and all(w is None for w in seen)
            out = upstream(_waves(), output_attentions=True)
    finally:
        for handle in handles:
            handle.remove()
    assert all(w.shape[-2:] == (50, 50) for w in out.attentions)
    for w in out.attentions:
        torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))


def test_kernel_switch_is_undone_after_each_forward(upstream: Upstream):
    """The configs (shared with Whisper's decoder) read as loaded once a forward returns."""
    configs = [b.module.config for b in upstream.attention_blocks()]
    with torch.no_grad():
        upstream(_waves())
        assert {c._attn_implementation for c in configs} == {"eager"}
        with upstream.attention_kernel():
            assert {c._attn_implementation for c in configs} == {"sdpa"}
        upstream(_waves(), output_attentions=True)
    assert {c._attn_implementation for c in configs} == {"eager"}


def test_same_per_head_context_and_features(upstream: Upstream):
    heads = Heads(upstream)

    def run():
        with torch.no_grad(), heads.capture() as record:
            states = upstream(_waves()).hidden_states
        return states, [layer[0] for layer in record]

    (fused, fused_ctx), (eager, eager_ctx) = _both([upstream], run)
    _assert_states_close(fused, eager)
    for a, b in zip(fused_ctx, eager_ctx, strict=True):
        assert a.shape == b.shape == (3, 50, heads.blocks[0].num_heads, heads.head_dim)
        torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize("fill", ["mean", "zero"])
def test_masked_and_pruned_forwards_agree(upstream: Upstream, fill: str):
    heads = _with_stats(upstream)
    mask = _mask(heads)
    pruned = copy.deepcopy(upstream)
    Heads(pruned, heads.stats).prune(mask, fill)

    def run():
        with torch.no_grad():
            with heads.masked(mask, fill):
                masked = upstream(_waves()).hidden_states
            return masked, pruned(_waves()).hidden_states

    (fused_masked, fused_pruned), (eager_masked, eager_pruned) = _both([upstream, pruned], run)
    _assert_states_close(fused_masked, eager_masked)
    _assert_states_close(fused_pruned, eager_pruned)
    _assert_states_close(fused_pruned, fused_masked)


def test_gate_gradients_agree(upstream: Upstream):
    """What HIB, taylor and l0 train or read: d(loss)/d(head gate) through the kernel."""
    heads = _with_stats(upstream)

    def run():
        gates = torch.full(heads.shape, 0.7, requires_grad=True)
        with heads.gated(gates):
            loss = upstream(_waves()).hidden_states[-1].square().mean()
        return torch.autograd.grad(loss, gates)[0]

    fused, eager = _both([upstream], run)
    assert eager.abs().sum() > 0
    # float32 rounding through four tiny.en layers reaches ~3e-6 on 2 threads (1e-6 on 1):
    # the bound is 1e-3 of the largest gradient (at least 1e-6), far below a kernel difference
    atol = max(1e-6, 1e-3 * float(eager.abs().max()))
    torch.testing.assert_close(fused, eager, atol=atol, rtol=1e-3)


def test_thirty_second_window_on_tiny_en(whisper_cache_dir: Path):
    """ASR's input: 1500 positions, where the fused kernel tiles the keys; layer by layer.

    Each layer gets the same input under both kernels, so the comparison is of the kernels,
    not of float32 rounding compounded over layers and amplified by the last layer norm.
    """
    upstream = load_upstream(TINY_EN, cache_dir=whisper_cache_dir)
    with torch.no_grad():
        hidden = upstream.embed(_waves(1, seconds=30.0))
        assert hidden.shape[1] == 1500
        for index in range(upstream.n_layers):
            with upstream.attention_kernel():
                fused = upstream.run_layer(index, hidden)
            with upstream.attention_kernel(output_attentions=True):
                hidden = upstream.run_layer(index, hidden)
            torch.testing.assert_close(fused, hidden, **TOL)
