"""Shared fixtures: tiny random upstreams of every supported kind, and the converted tiny.en.

`make_tiny_upstream(kind, tmp_path)` builds a seeded, randomly initialised 2-layer x 4-head
model, saves it with save_pretrained and loads it back through `load_upstream`, so tests of
heads and methods exercise the same loading path as real checkpoints in well under a second.
Each kind turns 1 s of audio into about 50 positions, like the real models.

Tests marked `gpu` need CUDA: where torch sees no GPU they are skipped, with that reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hib.upstream import Upstream, load_upstream

TINY_KINDS = ("wav2vec2", "hubert", "wavlm", "whisper")
TINY_LAYERS, TINY_HEADS, TINY_HIDDEN = 2, 4, 32

_WAVEFORM_STEM = {
    "conv_dim": (16, 16, 16),
    "conv_kernel": (10, 8, 4),
    "conv_stride": (5, 8, 8),  # 320 samples per position, as in the real models
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 4,
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU: torch.cuda.is_available() is False")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


def _tiny_model(kind: str, **overrides: object) -> torch.nn.Module:
    """A tiny random model of `kind` (seed torch first); `overrides` replace its config's
    settings (another stem or layer-norm placement, as a real checkpoint has)."""
    from transformers import (
        HubertConfig,
        HubertModel,
        Wav2Vec2Config,
        Wav2Vec2Model,
        WhisperConfig,
        WhisperModel,
    )

    sizes = {"num_hidden_layers": TINY_LAYERS, "num_attention_heads": TINY_HEADS}
    waveform = {"hidden_size": TINY_HIDDEN, "intermediate_size": 64, **sizes, **_WAVEFORM_STEM}
    if kind == "wavlm":
        return tiny_wavlm(**overrides)
    if kind == "wav2vec2":
        return Wav2Vec2Model(Wav2Vec2Config(**waveform | overrides))
    if kind == "hubert":  # the layer-norm stem variant, so input normalisation is exercised
        stem = {"feat_extract_norm": "layer", "do_stable_layer_norm": True}
        return HubertModel(HubertConfig(**waveform | stem | overrides))
    if kind == "whisper":
        config = WhisperConfig(
            vocab_size=64,
            d_model=TINY_HIDDEN,
            encoder_layers=TINY_LAYERS,
            encoder_attention_heads=TINY_HEADS,
            decoder_layers=1,
            decoder_attention_heads=TINY_HEADS,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            max_source_positions=1500,
            max_target_positions=16,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
            decoder_start_token_id=1,
            **overrides,
        )
        return WhisperModel(config)
    raise ValueError(f"unknown tiny kind {kind!r}; one of {TINY_KINDS}")


def tiny_wavlm(**overrides: object) -> torch.nn.Module:
    """A tiny WavLM (post-LN unless `overrides` say otherwise) whose position bias matters.

    16 buckets up to 32 positions, so 50 positions reach the log-spaced buckets; embedding,
    gates, gate constants and attention projections drawn large (transformers starts the
    constants at 1 and the rest near 0), so attention moves the features and a head's bias,
    gate or constant used for another head shows.
    """
    from transformers import WavLMConfig, WavLMModel

    settings = {
        "hidden_size": TINY_HIDDEN,
        "intermediate_size": 64,
        "num_hidden_layers": TINY_LAYERS,
        "num_attention_heads": TINY_HEADS,
        "num_buckets": 16,
        "max_bucket_distance": 32,
        **_WAVEFORM_STEM,
    }
    model = WavLMModel(WavLMConfig(**(settings | overrides)))
    with torch.no_grad():
        for layer in model.encoder.layers:
            attention = layer.attention
            attention.gru_rel_pos_const.uniform_(0.2, 3.0)
            attention.gru_rel_pos_linear.weight.normal_(0.0, 0.5)
            for proj in (attention.q_proj, attention.k_proj, attention.v_proj, attention.out_proj):
                proj.weight.normal_(0.0, 0.15)
        model.encoder.layers[0].attention.rel_attn_embed.weight.normal_(0.0, 1.0)
    return model


def save_tiny(kind: str, folder: Path, **overrides: object) -> Path:
    """A deterministic tiny checkpoint of `kind` (`_tiny_model`), saved like a hub folder."""
    torch.manual_seed(0)
    _tiny_model(kind, **overrides).save_pretrained(folder)
    return folder


def make_tiny_upstream(kind: str, tmp_path: Path) -> Upstream:
    """A deterministic tiny upstream of `kind`, saved under tmp_path and loaded back."""
    return load_upstream(str(save_tiny(kind, Path(tmp_path) / f"tiny-{kind}")))


@pytest.fixture(params=TINY_KINDS)
def tiny_upstream(request: pytest.FixtureRequest, tmp_path: Path) -> Upstream:
    return make_tiny_upstream(request.param, tmp_path)


@pytest.fixture(scope="session")
def whisper_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A hib cache with tiny.en converted once per session; load_upstream(cache_dir=...) it."""
    from hib.upstream.whisper import convert_whisper

    cache = tmp_path_factory.mktemp("hib-cache")
    convert_whisper(cache)
    return cache


def spoken_batch(sentences: list[tuple[str, str]]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(waves, lengths, texts) of espeak-ng readings of (sentence, voice) pairs, as
    `collate_asr` batches them: real speech-like clips for the recogniser tests."""
    from hib.data.librispeech import collate_asr
    from hib.data.synth import espeak

    espeak.reset()
    return collate_asr([(torch.from_numpy(espeak.synthesize(s, v)), s) for s, v in sentences])
