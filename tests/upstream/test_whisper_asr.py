"""Whisper tiny.en as a recogniser: same text as ctranslate2's greedy search, loss reaches gates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hib.errors import UpstreamError
from hib.heads import Heads
from hib.upstream.packaged import packaged_model_dir
from hib.upstream.whisper_asr import WhisperASR, load_whisper_asr, target_text
from tests.conftest import spoken_batch

SENTENCES = [
    ("the quick brown fox jumps over the lazy dog", "en-us"),
    ("we will meet at noon tomorrow near the station", "en-us-nyc"),
    ("a large red boat sailed slowly past the old stone bridge", "en-gb-x-rp+f3"),
]


@pytest.fixture(scope="module")
def asr(whisper_cache_dir: Path) -> WhisperASR:
    return load_whisper_asr("30s", cache_dir=whisper_cache_dir)


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    return spoken_batch(SENTENCES)


@pytest.fixture(scope="module")
def ours(asr: WhisperASR, batch) -> list[str]:
    waves, lengths, _ = batch
    return asr.transcribe(waves, lengths)


@pytest.mark.slow
def test_greedy_text_equals_ctranslate2(asr: WhisperASR, batch, ours: list[str]) -> None:
    ctranslate2 = pytest.importorskip("ctranslate2")
    from transformers import WhisperFeatureExtractor

    waves, lengths, texts = batch
    extractor = WhisperFeatureExtractor()
    features = np.stack(
        [
            extractor(w[:n].numpy(), sampling_rate=16000, return_tensors="np").input_features[0]
            for w, n in zip(waves, lengths, strict=True)
        ]
    )
    reference = ctranslate2.models.Whisper(
        str(packaged_model_dir()), device="cpu", compute_type="float32"
    )
    results = reference.generate(
        ctranslate2.StorageView.from_array(features), [asr.prompt] * len(texts), beam_size=1
    )
    assert ours == [asr.text(r.sequences_ids[0]) for r in results]
    assert all(o.strip() for o in ours)


@pytest.mark.slow
def test_batched_equals_one_by_one(asr: WhisperASR, batch, ours: list[str]) -> None:
    waves, lengths, _ = batch
    for i, text in enumerate(ours):
        n = int(lengths[i])
        assert asr.transcribe(waves[i : i + 1, :n], lengths[i : i + 1]) == [text]


def test_loss_backprops_to_encoder_head_gates(asr: WhisperASR, batch) -> None:
    waves, lengths, texts = batch
    heads = Heads(asr.upstream)
    gates = torch.ones(heads.shape, requires_grad=True)
    with heads.gated(gates, fill="zero"):
        loss = asr.loss(waves[:2], lengths[:2], texts[:2])
    loss.backward()
    assert loss.ndim == 0 and 0 < float(loss.detach()) < 5
    assert gates.grad is not None and torch.all(gates.grad.abs().sum(1) > 0)  # every layer
    assert not any(p.requires_grad for p in asr.parameters())


def test_masking_encoder_heads_changes_what_the_decoder_sees(asr: WhisperASR, batch) -> None:
    waves, lengths, texts = batch
    heads = Heads(asr.upstream)
    assert heads.shape == (4, 6)
    with torch.no_grad():
        full = asr.loss(waves[:1], lengths[:1], texts[:1])
        with heads.masked(torch.zeros(heads.shape), fill="zero"):
            masked = asr.loss(waves[:1], lengths[:1], texts[:1])
    assert float(masked) > float(full) + 1


def test_teacher_forcing_layout(asr: WhisperASR) -> None:
    inputs, labels = asr._teacher_forcing(["GO HOME", "Hello there, you."])
    home = asr.tokenizer.encode(" Go home", add_special_tokens=False).ids
    assert inputs[0, : 2 + len(home)].tolist() == asr.prompt + home
    assert labels[0, 0] == -100  # <|startoftranscript|> predicts nothing scored
    assert labels[0, 1 : 2 + len(home)].tolist() == [*home, asr.end]
    assert torch.all(labels[0, 2 + len(home) :] == -100)  # padding is not scored
    assert inputs.shape == labels.shape


def test_target_text() -> None:
    assert target_text("GO DO YOU HEAR") == " Go do you hear"
    assert target_text("  Already  Cased. ") == " Already Cased."


def test_context_choices_and_length_limit(asr: WhisperASR) -> None:
    with pytest.raises(UpstreamError, match="context must be one of"):
        WhisperASR(asr.model, asr.tokenizer, context="10s")  # type: ignore[arg-type]
    with pytest.raises(UpstreamError, match="longer than Whisper's 30 s"):
        asr.encode(torch.zeros(1, 16000 * 31), torch.tensor([16000 * 31]))
    asr.context = "short"
    try:
        assert asr.encode(torch.zeros(2, 16000), torch.tensor([16000, 8000])).shape == (2, 50, 384)
    finally:
        asr.context = "30s"
    assert asr.encode(torch.zeros(1, 16000), torch.tensor([16000])).shape == (1, 1500, 384)


def test_a_decoder_loop_is_stopped_but_repeated_words_are_not() -> None:
    from hib.upstream.whisper_asr import LOOP_TOKENS, looping

    def tokens(*rows: list[int]) -> list[torch.Tensor]:
        return list(torch.tensor(rows).T)

    phrase = [5, 6, 7, 8]
    loop = [1, 2, 3] + phrase * 4  # 4 repeats of a 4-gram: 16 tokens
    words = list(range(10, 10 + len(loop)))  # no repeat at all
    stutter = list(range(40, 40 + len(loop) - 4)) + [9, 9, 9, 9]  # "no no no no": 4 tokens
    found = looping(tokens(loop, words, stutter))
    assert found.tolist() == [True, False, False]
    assert not looping(tokens(loop[: LOOP_TOKENS - 1])).any()  # too short to tell
