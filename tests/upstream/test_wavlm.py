"""WavLM's per-head attention against transformers' fused `WavLMAttention`, and WavLM heads.

The reference is the same random tiny model left as transformers builds it; the per-head one
is a copy with `per_head_attention` swapped in, run through transformers' own forward (which
hands the position bias from layer to layer and takes an attention mask).
"""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import tiny_wavlm
from transformers.models.wavlm.modeling_wavlm import WavLMAttention

from hib.upstream.wavlm import per_head_attention, relative_position_buckets

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
