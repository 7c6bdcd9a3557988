"""transformers checkpoints: save/load round trips, input normalisation, and refused specs.

WavLM's equivalence with transformers and its heads are in test_wavlm.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import TINY_KINDS, _tiny_model, make_tiny_upstream

from hib.errors import UpstreamError
from hib.upstream import HFUpstream, WhisperEncoderUpstream, list_upstreams, load_upstream


def _waves() -> torch.Tensor:
    return 0.1 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(1))


def _loaded_module(upstream) -> torch.nn.Module:
    return upstream.encoder if isinstance(upstream, WhisperEncoderUpstream) else upstream.model


@pytest.mark.parametrize("kind", TINY_KINDS)
def test_round_trip_keeps_weights_and_outputs(kind: str, tmp_path: Path):
    torch.manual_seed(0)
    saved = _tiny_model(kind).state_dict()
    upstream = make_tiny_upstream(kind, tmp_path / "a")
    prefix = "encoder." if kind == "whisper" else ""
    for name, value in _loaded_module(upstream).state_dict().items():
        torch.testing.assert_close(value, saved[prefix + name], rtol=0, atol=0)
    again = make_tiny_upstream(kind, tmp_path / "b")
    with torch.no_grad():
        first, second = upstream(_waves()), again(_waves())
    for a, b in zip(first.hidden_states, second.hidden_states, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert upstream.name == str(tmp_path / "a" / f"tiny-{kind}")


def test_wav2vec2_output_equals_the_original_model(tmp_path: Path):
    torch.manual_seed(0)
    model = _tiny_model("wav2vec2").eval()
    upstream = make_tiny_upstream("wav2vec2", tmp_path)
    with torch.no_grad():
        expected = model(_waves(), output_hidden_states=True).hidden_states
        got = upstream(_waves()).hidden_states
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b)


def test_pre_ln_hubert_reports_the_normed_last_state(tmp_path: Path):
    """Layer inputs as the model records them; the last state after the final layer norm
    (the model's last_hidden_state), as for Whisper and post-LN wav2vec2."""
    torch.manual_seed(0)
    model = _tiny_model("hubert").eval()
    upstream = make_tiny_upstream("hubert", tmp_path)
    waves = (_waves() - _waves().mean(-1, keepdim=True)) / _waves().std(-1, keepdim=True)
    with torch.no_grad():
        expected = model(waves, output_hidden_states=True)
        got = upstream(_waves()).hidden_states
    for a, b in zip(got[:-1], expected.hidden_states[:-1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got[-1], expected.last_hidden_state, rtol=1e-4, atol=1e-4)


def test_normalisation_follows_checkpoint(tmp_path: Path):
    from transformers import Wav2Vec2FeatureExtractor

    assert make_tiny_upstream("wav2vec2", tmp_path).normalize is False  # group-norm stem
    assert make_tiny_upstream("hubert", tmp_path).normalize is True  # layer-norm stem
    folder = tmp_path / "tiny-wav2vec2"
    Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(folder)
    upstream = load_upstream(str(folder))
    assert isinstance(upstream, HFUpstream) and upstream.normalize is True
    waves = _waves()
    with torch.no_grad():  # per-clip zero mean / unit variance: the scale of the input is gone
        torch.testing.assert_close(
            upstream(3 * waves).hidden_states[-1], upstream(waves).hidden_states[-1]
        )


def test_wavlm_loads_with_per_head_attention(tmp_path: Path):
    """Once refused (its fused attention hid the heads); now every layer runs hib's module."""
    from hib.upstream.hf import WavLMUpstream
    from hib.upstream.wavlm import WavLMHeadAttention

    upstream = make_tiny_upstream("wavlm", tmp_path)
    assert isinstance(upstream, WavLMUpstream)
    assert [type(b.module) for b in upstream.attention_blocks()] == [WavLMHeadAttention] * 2
    assert "wavlm" in list_upstreams()[-1]


def test_unsupported_model_type(tmp_path: Path):
    from transformers import BertConfig

    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4).save_pretrained(tmp_path)
    with pytest.raises(UpstreamError, match="'bert' is not supported"):
        load_upstream(str(tmp_path))


@pytest.mark.parametrize("spec", ["./no/such/folder", "whisper-tiny", "a/b/c", ""])
def test_bad_spec_is_one_line_naming_it(spec: str):
    with pytest.raises(UpstreamError) as info:
        load_upstream(spec)
    message = str(info.value)
    assert repr(spec) in message and "\n" not in message


def test_folder_without_checkpoint(tmp_path: Path):
    with pytest.raises(UpstreamError, match="cannot load from local folder"):
        load_upstream(str(tmp_path))


def test_unreachable_hub_is_an_upstream_error(monkeypatch: pytest.MonkeyPatch):
    """Offline mode fails at once, as a real dead network does after retries."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UpstreamError, match=r"'someone/some-model'.*hub"):
        load_upstream("someone/some-model")


def test_list_upstreams_names_the_default():
    assert list_upstreams()[0] == "whisper-tiny.en"
