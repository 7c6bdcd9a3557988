"""Generated background noise: the `_background_noise_/` files and the evaluation noise.

Six families stand in for the recordings of Speech Commands: white, pink and brown noise, a
babble of overlapping synthetic talkers, mains hum with harmonics, and a running tap. Every
signal comes from the generator it is given, so two seeds give two independent realizations
of the same families (the corpus uses one for the files, another to degrade val/test clips).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from scipy.signal import butter, sosfilt

from hib.data.audio import SAMPLE_RATE, write_wav
from hib.data.synth import espeak

NOISE_FILES = {
    "white": "white_noise.wav",
    "pink": "pink_noise.wav",
    "brown": "brown_noise.wav",
    "babble": "babble.wav",
    "hum": "mains_hum.wav",
    "tap": "running_tap.wav",
}
NOISE_TYPES = tuple(NOISE_FILES)

RMS = 0.1
"""Every noise is written at -20 dBFS RMS; users of the files rescale them to an SNR anyway."""

BABBLE_TALKERS = 7
"""Enough overlapping voices that no single word is intelligible, as in a crowded room."""

# fmt: off
_FILLER = (
    "about", "after", "again", "almost", "also", "always", "animal", "another", "answer",
    "apple", "around", "away", "baby", "back", "basket", "better", "between", "bottle",
    "bread", "bridge", "brother", "butter", "button", "camera", "candle", "captain", "carpet",
    "castle", "chair", "cheese", "children", "circle", "city", "cloud", "coffee", "color",
    "corner", "country", "garden", "glass", "green", "guitar", "hammer", "heavy", "hello",
    "island", "jacket", "kitchen", "ladder", "lemon", "letter", "little", "market", "matter",
    "melon", "middle", "mirror", "money", "morning", "mountain", "music", "never", "number",
    "orange", "paper", "pencil", "people", "pepper", "picture", "planet", "pocket", "purple",
    "rabbit", "rather", "river", "salad", "silver", "simple", "sister", "something", "summer",
    "sugar", "table", "teacher", "ticket", "tiger", "today", "tomato", "travel", "under",
    "village", "water", "weather", "window", "winter", "yellow",
)
# fmt: on
"""Babble text: common words, none a vocabulary word or a near-homophone of one."""


def colored(n: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Noise whose power falls as 1/f**exponent (0 white, 1 pink, 2 brown), flat below 20 Hz."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.maximum(np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE), 20.0)
    return np.fft.irfft(spectrum * freqs ** (-exponent / 2.0), n)


def hum(n: int, rng: np.random.Generator) -> np.ndarray:
    """Mains hum: 50 or 60 Hz and random-strength harmonics up to ~1 kHz, a slow wobble, hiss."""
    t = np.arange(n) / SAMPLE_RATE
    base = rng.choice([50.0, 60.0])
    x = np.zeros(n)
    for k in range(1, int(1000 // base) + 1):
        amplitude = rng.uniform(0.2, 1.0) / k ** rng.uniform(0.5, 1.5)
        x += amplitude * np.sin(2 * np.pi * base * k * t + rng.uniform(0, 2 * np.pi))
    wobble = 1.0 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t)
    return x * wobble + 0.02 * np.std(x) * rng.standard_normal(n)


def tap(n: int, rng: np.random.Generator) -> np.ndarray:
    """Running water: band-passed hiss (0.5-6 kHz) under a fast, random gurgle envelope."""
    band = butter(4, [500.0, 6000.0], btype="band", fs=SAMPLE_RATE, output="sos")
    gurgle = butter(2, 30.0, fs=SAMPLE_RATE, output="sos")
    envelope = 1.0 + 3.0 * np.abs(sosfilt(gurgle, rng.standard_normal(n)))
    return sosfilt(band, rng.standard_normal(n)) * envelope


def babble(n: int, rng: np.random.Generator) -> np.ndarray:
    """Overlapping talkers, each a chain of fresh random sentences in a random espeak voice.

    No sentence waveform is used twice, so any two regions of the result share no speech.
    espeak-ng is reset first so the result does not depend on what was synthesized before.
    """
    espeak.reset()
    voices = espeak.variants()
    x = np.zeros(n)
    for _ in range(BABBLE_TALKERS):
        pos = int(rng.integers(0, SAMPLE_RATE))
        while pos < n:
            speech = _sentence(rng, voices)
            end = min(n, pos + len(speech))
            x[pos:end] += speech[: end - pos] * rng.uniform(0.5, 1.5) / (np.std(speech) + 1e-9)
            pos = end + int(rng.integers(0, SAMPLE_RATE // 4))
    return x


def _sentence(rng: np.random.Generator, voices: list[str]) -> np.ndarray:
    words = " ".join(rng.choice(_FILLER, size=int(rng.integers(5, 12))))
    voice = f"{rng.choice(espeak.ACCENTS)}+{rng.choice(voices)}"
    return espeak.synthesize(
        words, voice, int(rng.integers(20, 81)), int(rng.integers(130, 221)), 50
    )


_MAKERS: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "white": lambda n, rng: colored(n, rng, 0.0),
    "pink": lambda n, rng: colored(n, rng, 1.0),
    "brown": lambda n, rng: colored(n, rng, 2.0),
    "babble": babble,
    "hum": hum,
    "tap": tap,
}


def make_noise(kind: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """`seconds` of one noise family as float32 at 16 kHz and RMS `RMS`."""
    x = _MAKERS[kind](int(round(seconds * SAMPLE_RATE)), rng)
    return (x * (RMS / (np.sqrt(np.mean(x**2)) + 1e-12))).astype(np.float32)


def noise_bank(seconds: float, seed: int) -> dict[str, np.ndarray]:
    """Every family, each from its own generator so one type does not shift the others."""
    return {
        kind: make_noise(kind, seconds, np.random.default_rng([seed, i]))
        for i, kind in enumerate(NOISE_TYPES)
    }


def write_noise_folder(folder: Path, seconds: float, seed: int) -> list[Path]:
    """The `_background_noise_/` files, one per family."""
    bank = noise_bank(seconds, seed)
    return [write_wav(folder / NOISE_FILES[kind], x) for kind, x in bank.items()]
