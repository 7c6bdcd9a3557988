"""espeak-ng through ctypes: a formant synthesizer with hundreds of cheap, distinct voices.

The library and its data come from the `espeakng-loader` wheel, so no system package is needed.
espeak-ng keeps global state, so the library is initialised once per process (see `reset`) and
every call holds a lock; synthesis is synchronous (a callback collects samples, nothing plays).
"""

from __future__ import annotations

import _ctypes
import ctypes
import threading
import zlib
from math import gcd
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from hib.data.audio import SAMPLE_RATE
from hib.errors import HibError

ESPEAK_RATE = 22050
"""What espeak-ng produces; `synthesize` resamples to SAMPLE_RATE."""

ACCENTS = (
    "en-us",
    "en-us-nyc",
    "en",
    "en-gb-x-rp",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
)
"""English voices whose spelling rules still pronounce the keywords as English words."""

_UNUSABLE = {"Demonic", "UniRobot", "anikaRobot", "fast", "Mr serious"}
"""Variants left out: distorted beyond recognition, a test voice, a name with a space."""

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE, _PITCH, _RANGE = 1, 3, 4
_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)

_lock = threading.Lock()
_libc = ctypes.CDLL(None)
_lib: ctypes.CDLL | None = None
_chunks: list[np.ndarray] = []


@_CALLBACK
def _collect(wav: ctypes.POINTER(ctypes.c_short), n: int, _events: ctypes.c_void_p) -> int:
    """espeak-ng hands over audio in pieces; a NULL pointer marks the end."""
    if wav and n > 0:
        _chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
    return 0


def _library() -> ctypes.CDLL:
    """Load and initialise libespeak-ng once per process (callers hold `_lock`)."""
    global _lib
    if _lib is None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        text_args = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint]
        lib.espeak_Synth.argtypes = [*text_args, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        data = espeakng_loader.get_data_path().encode()
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, 0)
        if rate != ESPEAK_RATE:
            raise HibError(f"espeak-ng failed to initialise (returned {rate}) with data {data!r}")
        lib.espeak_SetSynthCallback(_collect)
        _lib = lib
    return _lib


def reset() -> None:
    """Unload libespeak-ng, so the next call starts from the state of a fresh process.

    espeak-ng keeps state such as its pitch-flutter phase in C statics that carry over from
    one utterance to the next, so audio depends on everything synthesized before; a
    reset before a fixed sequence of calls makes that sequence repeatable. Costs ~10 ms.
    """
    global _lib
    with _lock:
        if _lib is not None:
            _lib.espeak_Terminate()
            _ctypes.dlclose(_lib._handle)
            _lib = None


def variants() -> list[str]:
    """The voice variants shipped with espeak-ng (`en-us+<variant>`), minus the unusable ones."""
    import espeakng_loader

    folder = Path(espeakng_loader.get_data_path()) / "voices" / "!v"
    return sorted(p.name for p in folder.iterdir() if p.is_file() and p.name not in _UNUSABLE)


def synthesize(
    text: str, voice: str = "en-us", pitch: int = 50, rate: int = 175, pitch_range: int = 50
) -> np.ndarray:
    """float32 audio at 16 kHz, untrimmed.

    `voice` is a language with an optional variant ("en-us", "en-gb-x-rp+f3"); `pitch` and
    `pitch_range` are 0-100, `rate` is in words per minute (80-450).
    """
    with _lock:
        lib = _library()
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise HibError(f"espeak-ng has no voice {voice!r}")
        for parameter, value in ((_RATE, rate), (_PITCH, pitch), (_RANGE, pitch_range)):
            lib.espeak_SetParameter(parameter, int(value), 0)
        # noise (breath, frication, some variants' jitter) comes from espeak-ng's generator and
        # from libc rand(): seed both from the request, so audio never depends on earlier calls
        request_seed = zlib.crc32(f"{text}|{voice}|{pitch}|{rate}|{pitch_range}".encode())
        lib.espeak_ng_SetRandSeed(request_seed)
        _libc.srand(request_seed)
        encoded = text.encode() + b"\0"
        _chunks.clear()
        status = lib.espeak_Synth(
            encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
        )
        if status != 0:
            raise HibError(f"espeak-ng failed on {text!r} with voice {voice!r} (error {status})")
        raw = np.concatenate(_chunks) if _chunks else np.zeros(0, np.int16)
        _chunks.clear()
    g = gcd(SAMPLE_RATE, ESPEAK_RATE)
    return resample_poly(raw / 32768.0, SAMPLE_RATE // g, ESPEAK_RATE // g).astype(np.float32)
