"""WavLM's per-head attention against transformers' fused `WavLMAttention`, and WavLM heads.

The reference is the same random tiny model left as transformers builds it; the per-head one
is a copy with `per_head_attention` swapped in (through transformers' own forward, which hands
the position bias from layer to layer and takes an attention mask) or loaded as an upstream.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from conftest import make_tiny_upstream, tiny_wavlm
from transformers.models.wavlm.modeling_wavlm import WavLMAttention

from hib.heads import Heads
from hib.upstream import load_upstream
from hib.upstream.hf import WavLMUpstream
from hib.upstream.wavlm import WavLMHeadAttention, per_head_attention, relative_position_buckets

TOL = {"atol": 1e-5, "rtol": 0.0}
VARIANTS = {
    "post-ln": {},
    "stable-ln": {"do_stable_layer_norm": True, "feat_extract_norm": "layer"},
}


def _waves(batch: int = 3) -> torch.Tensor:
    return 0.1 * torch.randn(batch, 16000, generator=torch.Generator().manual_seed(1))


def _pair(variant: str) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(transformers' model, a copy with per-head attention), both eval."""
    torch.manual_seed(0)
    reference = tiny_wavlm(**VARIANTS[variant]).eval()
    swapped = copy.deepcopy(reference)
    per_head_attention(swapped)
    return reference, swapped


def _padded(waves: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch with clip 1 cut to 0.55 s and clip 2 to 0.8 s (zeros after), and its mask."""
    lengths = torch.tensor([waves.shape[1], 8800, 12800])
    mask = (torch.arange(waves.shape[1]) < lengths[:, None]).long()
    return waves * mask, mask


def _assert_all_close(got: list[torch.Tensor], expected: list[torch.Tensor]) -> None:
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize("num_buckets,max_distance", [(320, 800), (16, 32), (10, 7), (64, 1000)])
def test_buckets_are_transformers(num_buckets: int, max_distance: int):
    offsets = torch.arange(-3000, 3001)
    attention = WavLMAttention(8, 2, num_buckets=num_buckets, max_distance=max_distance)
    expected = attention._relative_positions_bucket(offsets)
    got = relative_position_buckets(offsets, num_buckets, max_distance)
    assert torch.equal(got, expected)
    assert got.min() == 0 and got.max() == num_buckets - 1


# transformers' own WavLM hands F.multi_head_attention_forward a bool padding mask and a float
# bias, which PyTorch warns about
@pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")
@pytest.mark.parametrize("kernel", ["eager", "sdpa"])
@pytest.mark.parametrize("padded", [False, True], ids=["unpadded", "padded"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_swapped_model_is_transformers_wavlm(variant: str, padded: bool, kernel: str):
    """Last and every hidden state within 1e-5 (measured: 0 eager, <1e-6 SDPA), with and
    without an attention mask; the mask changes the frames it keeps, so it is not ignored."""
    reference, swapped = _pair(variant)
    swapped.config._attn_implementation = kernel
    waves, mask = _padded(_waves()) if padded else (_waves(), None)
    with torch.no_grad():
        expected = reference(waves, attention_mask=mask, output_hidden_states=True)
        got = swapped(waves, attention_mask=mask, output_hidden_states=True)
        unmasked = swapped(waves, output_hidden_states=True).last_hidden_state
    assert len(got.hidden_states) == 3
    _assert_all_close(list(got.hidden_states), list(expected.hidden_states))
    torch.testing.assert_close(got.last_hidden_state, expected.last_hidden_state, **TOL)
    if padded:  # clip 1 keeps 27 frames
        assert (got.last_hidden_state[1, :27] - unmasked[1, :27]).abs().max() > 1e-3


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_upstream_states_are_transformers_wavlm(variant: str, tmp_path: Path):
    reference, _ = _pair(variant)
    folder = tmp_path / variant
    reference.save_pretrained(folder)
    upstream = load_upstream(str(folder))
    assert isinstance(upstream, WavLMUpstream)
    assert all(isinstance(b.module, WavLMHeadAttention) for b in upstream.attention_blocks())
    waves = _waves()
    inputs = waves
    if upstream.normalize:  # the layer-norm stem is fed normalised clips, as the upstream does
        inputs = (waves - waves.mean(-1, keepdim=True)) / waves.std(-1, keepdim=True)
    with torch.no_grad():
        expected = reference(inputs, output_hidden_states=True)
        for kernel in (False, True):  # SDPA, then eager (weights asked for)
            got = upstream(waves, output_attentions=kernel).hidden_states
            _assert_all_close(got[:-1], list(expected.hidden_states[:-1]))
            torch.testing.assert_close(got[-1], expected.last_hidden_state, **TOL)


def test_per_head_maps_average_to_transformers_maps(tmp_path: Path):
    """transformers returns the head average repeated per head; hib returns each head's own."""
    torch.manual_seed(0)
    reference = tiny_wavlm().eval()
    upstream = make_tiny_upstream("wavlm", tmp_path)
    with torch.no_grad():
        averaged = reference(_waves(), output_attentions=True).attentions
        maps = upstream(_waves(), output_attentions=True).attentions
    assert len(maps) == len(averaged) == 2
    for got, expected in zip(maps, averaged, strict=True):
        assert got.shape == expected.shape == (3, 4, 50, 50)
        torch.testing.assert_close(got.sum(-1), torch.ones(3, 4, 50))
        assert torch.equal(expected, expected[:, :1].expand_as(expected))  # one map, repeated
        torch.testing.assert_close(got.mean(1), expected[:, 0], **TOL)
        assert (got - got.mean(1, keepdim=True)).abs().max() > 0.05  # the heads differ


def test_a_forward_can_start_at_any_layer(tmp_path: Path):
    """Layer 1 run on its own computes the position bias layer 0 would have handed it."""
    upstream = make_tiny_upstream("wavlm", tmp_path)
    with torch.no_grad():
        states = upstream.layer_inputs(_waves())
        again = upstream.forward_from(states[:2]).hidden_states
        chained = upstream.model(_waves(), output_hidden_states=True).hidden_states
    torch.testing.assert_close(again[-1], states[-1], rtol=0, atol=0)
    torch.testing.assert_close(states[-1], chained[-1], **TOL)


def _pruned(upstream: WavLMUpstream, mask: torch.Tensor) -> tuple[Heads, WavLMUpstream]:
    heads = Heads(upstream)
    heads.fit_stats(iter([_waves(4)]), max_clips=4)
    pruned = copy.deepcopy(upstream)
    Heads(pruned, heads.stats).prune(mask)
    return heads, pruned


def test_pruning_slices_gate_constants_and_bias_rows(tmp_path: Path):
    """Layer 0 loses heads 0 and 2, which layer 1 keeps: the shared embedding stays whole."""
    upstream = make_tiny_upstream("wavlm", tmp_path)
    mask = torch.tensor([[False, True, False, True], [True, True, True, False]])
    heads, pruned = _pruned(upstream, mask)
    before = [b.module for b in upstream.attention_blocks()]
    after = [b.module for b in pruned.attention_blocks()]
    for layer, (old, new) in enumerate(zip(before, after, strict=True)):
        kept = mask[layer].nonzero().flatten()
        assert new.head_index.tolist() == kept.tolist() and new.num_heads == len(kept)
        assert torch.equal(new.gru_rel_pos_const, old.gru_rel_pos_const[:, kept])
        assert torch.equal(new.gru_rel_pos_linear.weight, old.gru_rel_pos_linear.weight)
        assert new.q_proj.out_features == len(kept) * 8
    assert after[0].rel_attn_embed.weight.shape == (16, 4)
    assert after[1].positions is after[0].rel_attn_embed
    waves = _waves()
    with torch.no_grad(), heads.masked(mask):
        masked = upstream(waves).hidden_states
    with torch.no_grad():
        _assert_all_close(pruned(waves).hidden_states, masked)
        maps = pruned(waves, output_attentions=True).attentions
        full = upstream(waves, output_attentions=True).attentions
    # a kept head attends as it did: its map depends on its own bias, gate and constant only
    torch.testing.assert_close(maps[0], full[0][:, [1, 3]], **TOL)


def test_pruned_state_loads_into_a_fresh_model_pruned_alike(tmp_path: Path):
    """What a pruned checkpoint does: fresh model, same heads removed, then the weights."""
    upstream = make_tiny_upstream("wavlm", tmp_path / "a")
    mask = torch.tensor([[True, False, False, True], [False] * 4])
    _, pruned = _pruned(upstream, mask)
    fresh = make_tiny_upstream("wavlm", tmp_path / "b")
    Heads(fresh).prune(mask, fill="zero")
    fresh.load_state_dict(pruned.state_dict())
    with torch.no_grad():
        _assert_all_close(fresh(_waves()).hidden_states, pruned(_waves()).hidden_states)
