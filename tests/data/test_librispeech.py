"""The LibriSpeech reader on a tiny fixture in the exact layout, and each way a folder is wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from hib.data.librispeech import collate_asr, load_librispeech
from hib.errors import DataError

SR = 16000
# (speaker, chapter, utterance, seconds, rate, channels, suffix, transcript)
UTTERANCES = [
    ("84", "121123", "0000", 1.0, 16000, 1, ".flac", "GO DO YOU HEAR"),
    ("84", "121123", "0001", 0.5, 44100, 1, ".flac", "BUT IN LESS THAN FIVE MINUTES"),
    ("174", "50561", "0000", 0.75, 8000, 2, ".wav", "FORGOTTEN TOO THE NAME OF GILLIAN"),
]


def _noise(seconds: float, rate: int, channels: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((int(seconds * rate), channels))).astype(np.float32)


def make_librispeech(root: Path, split: str = "test-clean") -> Path:
    for i, (spk, chap, utt, seconds, rate, channels, suffix, _) in enumerate(UTTERANCES):
        folder = root / split / spk / chap
        folder.mkdir(parents=True, exist_ok=True)
        sf.write(str(folder / f"{spk}-{chap}-{utt}{suffix}"), _noise(seconds, rate, channels, i), rate)
    for spk, chap in {(u[0], u[1]) for u in UTTERANCES}:
        lines = [f"{s}-{c}-{u} {text}\n" for s, c, u, *_, text in UTTERANCES if (s, c) == (spk, chap)]
        (root / split / spk / chap / f"{spk}-{chap}.trans.txt").write_text("".join(lines))
    return root


@pytest.fixture
def libri(tmp_path: Path) -> Path:
    return make_librispeech(tmp_path / "LibriSpeech")


def test_reads_the_layout(libri: Path) -> None:
    data = load_librispeech(libri, "test-clean")
    assert data.ids == ["174-50561-0000", "84-121123-0000", "84-121123-0001"]
    assert data.speakers == ["174", "84", "84"]
    assert data.texts[1] == "GO DO YOU HEAR"
    assert data.durations == pytest.approx([0.75, 1.0, 0.5], abs=1e-3)
    for (wave, text), seconds in zip(data, data.durations, strict=True):
        assert wave.dtype == torch.float32 and wave.ndim == 1  # stereo averaged
        assert len(wave) == pytest.approx(seconds * SR, abs=1)  # 8 and 44.1 kHz resampled
        assert isinstance(text, str)
    assert data.subset([2]).ids == ["84-121123-0001"]


def test_any_folder_name_is_a_split(tmp_path: Path) -> None:
    root = make_librispeech(tmp_path / "mine", split="test-real")
    assert len(load_librispeech(root, "test-real")) == 3


def test_collate_pads_and_reports_lengths(libri: Path) -> None:
    data = load_librispeech(libri, "test-clean")
    waves, lengths, texts = collate_asr([data[1], data[2]])
    assert waves.shape == (2, SR) and lengths.tolist() == [SR, SR // 2]
    assert torch.all(waves[1, SR // 2 :] == 0)
    torch.testing.assert_close(waves[1, : SR // 2], data[2][0])
    assert texts == [data.texts[1], data.texts[2]]


def test_missing_or_empty_split(libri: Path) -> None:
    with pytest.raises(DataError, match=r"dev-clean: no such split folder \(found: test-clean\)"):
        load_librispeech(libri, "dev-clean")
    (libri / "empty").mkdir()
    with pytest.raises(DataError, match="empty: holds no utterances"):
        load_librispeech(libri, "empty")


def _chapter(libri: Path) -> Path:
    return libri / "test-clean" / "84" / "121123"


def test_transcript_line_without_audio(libri: Path) -> None:
    (_chapter(libri) / "84-121123-0001.flac").unlink()
    with pytest.raises(DataError, match=r"84-121123.trans.txt:2: 84-121123-0001 has no audio"):
        load_librispeech(libri, "test-clean")


def test_audio_without_transcript_line(libri: Path) -> None:
    sf.write(str(_chapter(libri) / "84-121123-0009.wav"), _noise(0.2, SR, 1, 9), SR)
    with pytest.raises(DataError, match=r"84-121123-0009.wav: no transcript line .*84-121123"):
        load_librispeech(libri, "test-clean")


def test_unreadable_audio_is_named(libri: Path) -> None:
    bad = _chapter(libri) / "84-121123-0000.flac"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(DataError, match="84-121123-0000.flac: unreadable audio") as info:
        load_librispeech(libri, "test-clean")
    assert "\n" not in str(info.value)


def test_line_without_text(libri: Path) -> None:
    transcript = _chapter(libri) / "84-121123.trans.txt"
    transcript.write_text(transcript.read_text() + "84-121123-0002\n")
    with pytest.raises(DataError, match=":3: 84-121123-0002 has no transcript text"):
        load_librispeech(libri, "test-clean")
