"""CTC checkpoints through the ASR API, on tiny random Wav2Vec2ForCTC / HubertForCTC models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import _WAVEFORM_STEM, TINY_HEADS, TINY_HIDDEN, TINY_LAYERS, make_tiny_upstream

from hib.errors import UpstreamError
from hib.heads import Heads
from hib.upstream.ctc_asr import CTCASR, load_ctc_asr, normalize_clips

VOCAB = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, "A": 5, "B": 6, "C": 7, "D": 8}


def make_ctc(kind: str, tmp_path: Path) -> Path:
    """A seeded tiny CTC checkpoint and its tokenizer, saved like a hub folder."""
    from transformers import (
        HubertConfig,
        HubertForCTC,
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2ForCTC,
    )

    torch.manual_seed(0)
    sizes = {
        "hidden_size": TINY_HIDDEN,
        "intermediate_size": 64,
        "num_hidden_layers": TINY_LAYERS,
        "num_attention_heads": TINY_HEADS,
        "vocab_size": len(VOCAB),
        "pad_token_id": 0,
        "ctc_loss_reduction": "sum",
        **_WAVEFORM_STEM,
    }
    if kind == "wav2vec2":
        model = Wav2Vec2ForCTC(Wav2Vec2Config(**sizes))
    else:  # the layer-norm stem, which normalises its input
        config = HubertConfig(feat_extract_norm="layer", do_stable_layer_norm=True, **sizes)
        model = HubertForCTC(config)
    folder = tmp_path / f"tiny-{kind}-ctc"
    model.save_pretrained(folder)
    (tmp_path / "vocab.json").write_text(json.dumps(VOCAB))
    Wav2Vec2CTCTokenizer(str(tmp_path / "vocab.json")).save_pretrained(folder)
    return folder


@pytest.fixture(params=["wav2vec2", "hubert"])
def ctc(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[CTCASR, Path]:
    folder = make_ctc(request.param, tmp_path)
    return load_ctc_asr(str(folder)), folder


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    waves = 0.1 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(1))
    waves[1, 12000:] = 0
    return waves, torch.tensor([16000, 12000])


def test_logits_equal_the_checkpoints_own(ctc: tuple[CTCASR, Path]) -> None:
    from transformers import AutoModelForCTC

    asr, folder = ctc
    reference = AutoModelForCTC.from_pretrained(folder).eval()
    waves, lengths = _batch()
    one = waves[:1]
    with torch.no_grad():
        inputs = normalize_clips(one, lengths[:1]) if asr.normalize else one
        expected = reference(inputs).logits
        got, frames = asr.logits(one, lengths[:1])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert frames.tolist() == [got.shape[1]] == [50]
    assert asr.normalize is (asr.upstream.model.config.feat_extract_norm == "layer")
    assert not asr.upstream.normalize  # clips are normalised over their own length instead


def test_loss_is_ctc_per_token_and_reaches_head_gates(ctc: tuple[CTCASR, Path]) -> None:
    from transformers import AutoModelForCTC

    asr, folder = ctc
    waves, lengths = _batch()
    heads = Heads(asr.upstream)
    gates = torch.ones(heads.shape, requires_grad=True)
    with heads.gated(gates, fill="zero"):
        loss = asr.loss(waves, lengths, ["abc d", "DAD"])
    loss.backward()
    assert gates.grad is not None and torch.all(gates.grad.abs().sum(1) > 0)
    reference = AutoModelForCTC.from_pretrained(folder).eval()
    labels = torch.tensor([asr.labels("ABC D")])
    assert labels.tolist() == [[5, 6, 7, 4, 8]]
    one = normalize_clips(waves[:1], lengths[:1]) if asr.normalize else waves[:1]
    with torch.no_grad():
        expected = reference(one, labels=labels).loss / labels.numel()  # "sum" reduction
        got = asr.loss(waves[:1], lengths[:1], ["abc d"])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_transcribe_returns_vocabulary_text(ctc: tuple[CTCASR, Path]) -> None:
    asr, _ = ctc
    texts = asr.transcribe(*_batch())
    assert len(texts) == 2 and all(set(t) <= set("ABCD ") for t in texts)


def test_greedy_collapse(tmp_path: Path) -> None:
    asr = load_ctc_asr(str(make_ctc("wav2vec2", tmp_path)))
    # A A _ A | | B _ </s> C C |  ->  "AA BC" (repeats collapse, a blank separates, | is a space)
    assert asr.text([5, 5, 0, 5, 4, 4, 6, 0, 2, 7, 7, 4]) == "AA BC"
    assert asr.text([0, 0, 4]) == ""


def test_normalize_clips_ignores_padding() -> None:
    waves, lengths = _batch()
    out = normalize_clips(waves, lengths)
    assert torch.all(out[1, 12000:] == 0)
    torch.testing.assert_close(out[1, :12000].mean(), torch.tensor(0.0), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        out[1, :12000].std(unbiased=False), torch.tensor(1.0), atol=1e-4, rtol=0
    )


def test_refuses_non_ctc_checkpoints(tmp_path: Path) -> None:
    whisper = make_tiny_upstream("whisper", tmp_path).name
    with pytest.raises(UpstreamError, match="CTC needs a wav2vec2/hubert checkpoint"):
        load_ctc_asr(whisper)
    folder = make_ctc("wav2vec2", tmp_path / "x")
    for name in ("vocab.json", "tokenizer_config.json"):
        (folder / name).unlink(missing_ok=True)
    with pytest.raises(UpstreamError, match="no CTC tokenizer"):
        load_ctc_asr(str(folder))
