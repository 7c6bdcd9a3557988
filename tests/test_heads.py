"""The heads module on the toy upstream (tests/upstream covers the real ones)."""

import pytest
import torch

from hib.heads import Heads
from tests.toy import toy_data, trained_toy_model


def test_enumerates_every_head():
    heads = trained_toy_model(num_heads=4).heads()
    assert heads.shape == (1, 4)
    assert [h.name for h in heads] == ["L0.H0", "L0.H1", "L0.H2", "L0.H3"]
    assert len(heads) == 4


def test_hooks_leave_nothing_behind():
    model = trained_toy_model()
    heads = model.heads()
    x, _ = toy_data(8)
    before = model(x)
    with heads.masked(torch.zeros(heads.shape), fill="zero"):
        assert not torch.allclose(model(x), before)
    assert torch.equal(model(x), before)
    assert not heads.blocks[0].out_proj._forward_pre_hooks


def test_capture_sees_the_per_head_context():
    model = trained_toy_model(num_heads=2, informative_head=1)
    x, y = toy_data(16)
    with model.heads().capture() as record:
        model(x)
    ctx = record[0][0]
    assert ctx.shape == (16, 4, 2, 4)
    # the informative head's first channel is the label (uniform attention averages +-1 frames)
    assert torch.allclose(ctx[:, 0, 1, 0], y.float() * 2 - 1, atol=1e-5)


@pytest.mark.parametrize("fill", ["mean", "zero"])
def test_mask_equals_physical_removal(fill):
    model = trained_toy_model(num_heads=4)
    x, _ = toy_data(32, seed=4)
    mask = torch.tensor([[True, False, True, False]])
    with model.heads().masked(mask, fill):
        masked = model(x)
    model.heads().prune(mask, fill)
    pruned = model(x)
    assert model.heads().blocks[0].num_heads == 2
    assert model.upstream.attn.q_proj.out_features == 8 // 4 * 2
    assert (masked - pruned).abs().max().item() < 1e-5
    assert model.heads().alive().tolist() == mask.tolist()


def test_mask_after_pruning_uses_original_indices():
    model = trained_toy_model(num_heads=4)
    x, _ = toy_data(16, seed=5)
    first = torch.tensor([[True, False, True, True]])
    second = torch.tensor([[True, False, False, True]])
    with model.heads().masked(second):
        expected = model(x)
    model.heads().prune(first)
    with model.heads().masked(second):
        got = model(x)
    assert (expected - got).abs().max().item() < 1e-5


def test_removing_every_head_of_a_layer_keeps_shapes_valid():
    model = trained_toy_model(num_heads=2)
    x, _ = toy_data(8)
    mask = torch.zeros(1, 2, dtype=torch.bool)
    with model.heads().masked(mask):
        expected = model(x)
    model.heads().prune(mask)
    assert (model(x) - expected).abs().max().item() < 1e-5
    assert len(model.heads()) == 0


def test_stats_match_direct_computation():
    model = trained_toy_model(num_heads=2)
    x, _ = toy_data(96, seed=7)
    heads = Heads(model.upstream)
    stats = heads.fit_stats(iter(x.split(40)), max_clips=96)
    with heads.capture() as record:
        model.upstream(x)
    ctx = record[0][0].reshape(-1, 2, 4)
    assert torch.allclose(stats.mean[0], ctx.mean(0), atol=1e-5)
    assert torch.allclose(stats.std[0], ctx.std(0, unbiased=False), atol=1e-4)
    assert stats.n_clips == 96


def test_stats_through_a_forward_of_one_pass_per_clip():
    """A caller's forward may record one context per clip; max_clips cuts inside a batch."""
    model = trained_toy_model(num_heads=2)
    x, y = toy_data(10, seed=3)

    def one_by_one(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
        for clip in batch[0]:
            model.upstream(clip[None])

    batches = [(x[:6], y[:6]), (x[6:], y[6:])]
    stats = Heads(model.upstream).fit_stats(batches, max_clips=8, forward=one_by_one)
    direct = Heads(model.upstream).fit_stats(iter([x[:8]]), max_clips=8)
    assert stats.n_clips == 8
    assert torch.allclose(stats.mean, direct.mean, atol=1e-6)
    assert torch.allclose(stats.std, direct.std, atol=1e-6)
    assert not torch.allclose(stats.mean, Heads(model.upstream).fit_stats([x], 10).mean)


def test_mean_fill_needs_stats():
    model = trained_toy_model()
    heads = Heads(model.upstream)
    heads.stats = None
    with pytest.raises(ValueError, match="mean fill needs head statistics"):
        heads.fill_values("mean")


def _with_stats(upstream, n_classes: int = 12):
    from hib.downstream import UtteranceClassifier

    torch.manual_seed(0)
    model = UtteranceClassifier.build(upstream, n_classes).eval()
    waves = 0.1 * torch.randn(8, 16000)
    model.head_stats = model.heads().fit_stats(iter([waves]), max_clips=8)
    return model


@pytest.mark.parametrize("fill", ["mean", "zero"])
def test_mask_equals_removal_on_every_tiny_upstream(tiny_upstream, fill):
    model = _with_stats(tiny_upstream)
    heads = model.heads()
    mask = torch.rand(heads.shape, generator=torch.Generator().manual_seed(1)) > 0.5
    mask[0] = False  # one layer loses every head
    waves = 0.1 * torch.randn(3, 16000, generator=torch.Generator().manual_seed(2))
    with torch.no_grad(), heads.masked(mask, fill):
        masked = model(waves)
    heads.prune(mask, fill)
    with torch.no_grad():
        pruned = model(waves)
    assert (masked - pruned).abs().max().item() < 1e-5
    assert model.heads().alive().tolist() == mask.tolist()


def assert_mask_equals_removal(upstream, removed: list[tuple[int, int]]) -> list[int]:
    """A real model with a task head: `removed` heads masked = removed (within 1e-5 on the
    head's output); returns the pruned layers' q_proj widths."""
    model = _with_stats(upstream)
    heads = model.heads()
    mask = torch.ones(heads.shape, dtype=torch.bool)
    for layer, head in removed:
        mask[layer, head] = False
    waves = 0.1 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(3))
    with torch.no_grad(), heads.masked(mask):
        masked = model(waves)
    heads.prune(mask)
    with torch.no_grad():
        pruned = model(waves)
    assert (masked - pruned).abs().max().item() < 1e-5
    return [b.q_proj.out_features for b in model.heads().blocks]


def test_mask_equals_removal_on_whisper_tiny_en(whisper_cache_dir):
    from hib.upstream import load_upstream

    upstream = load_upstream(cache_dir=whisper_cache_dir)
    assert Heads(upstream).shape == (4, 6)
    widths = assert_mask_equals_removal(upstream, [(0, 1), (1, 0), (1, 5), (3, 2)])
    assert widths == [320, 256, 384, 320]
