"""Sentence-length utterances for the corpora that need more than a word (ASR, SID).

A sentence of `sentences.sentence` spoken by any synthesizer, trimmed, with a little silence
around it, at a random level, redrawn until its length is in range; every draw comes from the
generator passed in, so the same generator gives the same text and audio.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from hib.data.audio import SAMPLE_RATE
from hib.data.synth.corpus import trim_silence
from hib.data.synth.sentences import sentence
from hib.errors import DataError

ATTEMPTS = 40


class SentenceRanges(Protocol):
    """The fields of a corpus config that shape its utterances."""

    min_words: tuple[int, int]
    """Each sentence grows clause by clause to at least this many words (drawn per utterance)."""
    max_words: int
    seconds: tuple[float, float]
    """Accepted length, silence included."""
    silence_s: tuple[float, float]
    level_dbfs: tuple[float, float]


def speak_sentence(
    synth: Callable[[str], np.ndarray], rng: np.random.Generator, config: SentenceRanges
) -> tuple[str, np.ndarray]:
    """A sentence whose audio (with its silences) lasts within `config.seconds`."""
    for _ in range(ATTEMPTS):
        text = sentence(rng, int(rng.integers(*config.min_words, endpoint=True)), config.max_words)
        speech = trim_silence(synth(text))
        pads = [int(rng.uniform(*config.silence_s) * SAMPLE_RATE) for _ in range(2)]
        seconds = (len(speech) + sum(pads)) / SAMPLE_RATE
        if len(speech) and config.seconds[0] <= seconds <= config.seconds[1]:
            rms = np.sqrt(np.mean(speech**2)) + 1e-12
            speech = speech * (10 ** (rng.uniform(*config.level_dbfs) / 20) / rms)
            return text, np.pad(speech, pads).astype(np.float32)
    raise DataError(f"no sentence of {config.seconds} s in {ATTEMPTS} attempts; widen the range")
