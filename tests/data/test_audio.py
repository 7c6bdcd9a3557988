from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hib.data.audio import CLIP_SAMPLES, SAMPLE_RATE, fit_length, read_wav, write_wav
from hib.errors import DataError

from .conftest import tone, write


def dominant_hz(x: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    spectrum = np.abs(np.fft.rfft(x))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[spectrum.argmax()])


def test_constants() -> None:
    assert SAMPLE_RATE == 16000 and CLIP_SAMPLES == 16000


def test_read_16k_mono_round_trip(tmp_path: Path) -> None:
    x = tone(440)
    y = read_wav(write(tmp_path / "a.wav", x))
    assert y.dtype == np.float32 and y.shape == x.shape and y.flags.c_contiguous
    np.testing.assert_allclose(y, x, atol=1 / 32768)


def test_channels_are_averaged(tmp_path: Path) -> None:
    left, right = tone(440), np.full(16000, 0.25, dtype=np.float32)
    y = read_wav(write(tmp_path / "st.wav", np.stack([left, right], axis=1)))
    np.testing.assert_allclose(y, (left + right) / 2, atol=1 / 32768)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_other_rates_are_resampled(tmp_path: Path, rate: int) -> None:
    y = read_wav(write(tmp_path / "r.wav", tone(440, 1.0, sr=rate), sr=rate))
    assert y.dtype == np.float32 and len(y) == SAMPLE_RATE
    assert dominant_hz(y) == pytest.approx(440, abs=1.5)
    assert np.abs(y).max() == pytest.approx(0.5, abs=0.03)


def test_read_at_another_target_rate(tmp_path: Path) -> None:
    assert len(read_wav(write(tmp_path / "a.wav", tone(440)), sample_rate=8000)) == 8000


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really")
    empty_file = tmp_path / "zero_bytes.wav"
    empty_file.write_bytes(b"")
    for path in (corrupt, empty_file, tmp_path / "missing.wav"):
        with pytest.raises(DataError, match=f"{path}: unreadable audio") as info:
            read_wav(path)
        assert "\n" not in str(info.value)


def test_zero_sample_wav_is_named(tmp_path: Path) -> None:
    path = tmp_path / "silent.wav"
    sf.write(str(path), np.zeros(0, dtype=np.float32), SAMPLE_RATE, subtype="PCM_16")
    with pytest.raises(DataError, match=f"{path}: empty audio"):
        read_wav(path)


def test_fit_length() -> None:
    x = np.arange(1, 11, dtype=np.float32)
    np.testing.assert_array_equal(fit_length(x, 4), x[:4])
    padded = fit_length(x, 15)
    np.testing.assert_array_equal(padded, np.concatenate([x, np.zeros(5)]))
    assert padded.dtype == np.float32
    np.testing.assert_array_equal(fit_length(x, 10), x)
    assert len(fit_length(np.zeros(3, dtype=np.float32))) == CLIP_SAMPLES


def test_write_wav_clips_and_is_pcm16(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "sub" / "w.wav", np.array([2.0, -3.0, 0.5], dtype=np.float32))
    info = sf.info(str(path))
    assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "PCM_16")
    np.testing.assert_allclose(read_wav(path), [32767 / 32768, -1.0, 0.5], atol=1e-4)
    assert [p.name for p in path.parent.iterdir()] == ["w.wav"]  # no temporary left behind
