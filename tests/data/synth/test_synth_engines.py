"""The two synthesizers and the noise generators behave as the corpus relies on."""

from __future__ import annotations

import numpy as np
import pytest

from hib.data.synth import espeak, noise, piper
from hib.errors import HibError


def _f0(x: np.ndarray, sr: int = 16000) -> float:
    """Median YIN pitch (60-400 Hz) over loud, voiced 40 ms frames; YIN avoids octave errors."""
    n, lo, hi = sr // 25, sr // 400, sr // 60
    frames = [x[i : i + n + hi] for i in range(0, len(x) - n - hi, n // 2)]
    loud = max(np.sqrt(np.mean(f**2)) for f in frames) / 4
    pitches = []
    for f in frames:
        if np.sqrt(np.mean(f**2)) < loud:
            continue
        d = np.array([np.sum((f[:n] - f[tau : tau + n]) ** 2) for tau in range(1, hi + 1)])
        cmnd = d * np.arange(1, hi + 1) / np.maximum(np.cumsum(d), 1e-12)
        below = np.flatnonzero(cmnd[lo - 1 :] < 0.3)
        if len(below) == 0:  # not periodic enough to be voiced
            continue
        i = lo - 1 + below[0]
        while i + 1 < hi and cmnd[i + 1] < cmnd[i]:  # slide down to the bottom of the dip
            i += 1
        pitches.append(sr / (i + 1))
    return float(np.median(pitches))


def test_espeak_says_a_word() -> None:
    x = espeak.synthesize("yes")
    assert x.dtype == np.float32
    assert 0.2 < len(x) / 16000 < 1.0
    assert np.sqrt(np.mean(x**2)) > 0.01


def test_espeak_pitch_setting_raises_f0() -> None:
    espeak.reset()
    low = espeak.synthesize("marvin", pitch=20)
    high = espeak.synthesize("marvin", pitch=90)
    assert _f0(high) > 1.4 * _f0(low)


def test_espeak_is_repeatable_after_reset() -> None:
    def say() -> list[np.ndarray]:
        return [espeak.synthesize(w, "en+" + v) for w, v in (("go", "m3"), ("six", "Reed"))]

    espeak.reset()
    first = say()
    espeak.synthesize("something else entirely", "en-gb-scotland+f2", 80, 300)
    espeak.reset()
    assert all(np.array_equal(a, b) for a, b in zip(first, say(), strict=True))


def test_espeak_unknown_voice_is_an_error() -> None:
    with pytest.raises(HibError, match="no voice"):
        espeak.synthesize("yes", "xx-nowhere")


def test_piper_says_a_word() -> None:
    x = piper.synthesize("yes")
    assert x.dtype == np.float32
    assert 0.2 < len(x) / 16000 < 1.5
    assert np.sqrt(np.mean(x**2)) > 0.01


def test_piper_seeded_voice_repeats_and_semitones_shift_pitch() -> None:
    def say(semitones: float) -> np.ndarray:
        return piper.synthesize("marvin", semitones=semitones, voice=piper.load_voice(seed=7))

    down, up = say(-3.0), say(3.0)
    assert np.array_equal(up, say(3.0))
    assert 1.2 < _f0(up) / _f0(down) < 1.7  # 6 semitones is a factor 1.41


def _low_share(x: np.ndarray, below_hz: float = 300.0) -> float:
    power = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / 16000)
    return float(power[freqs < below_hz].sum() / power.sum())


def test_noise_types_differ_spectrally() -> None:
    bank = noise.noise_bank(5.0, seed=3)
    assert set(bank) == set(noise.NOISE_TYPES)
    for x in bank.values():
        assert len(x) == 5 * 16000 and np.isclose(np.sqrt(np.mean(x**2)), noise.RMS, rtol=1e-3)
    share = {kind: _low_share(x) for kind, x in bank.items()}
    assert share["white"] < 0.05 < share["pink"] < share["brown"]
    assert share["tap"] < 0.01 and share["hum"] > 0.5
    assert noise.noise_bank(5.0, seed=3)["babble"].tobytes() == bank["babble"].tobytes()
    assert noise.noise_bank(5.0, seed=4)["babble"].tobytes() != bank["babble"].tobytes()
