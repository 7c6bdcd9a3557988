"""Reading and writing 1 s clips: always 16 kHz mono float32, converted rather than rejected."""

from __future__ import annotations

import re
from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from hib.errors import DataError
from hib.io import atomic_write

SAMPLE_RATE = 16000
CLIP_SAMPLES = SAMPLE_RATE  # every clip is exactly 1 s
# libsndfile's log line for a WAV whose data chunk is shorter than its header says
_DATA_CHUNK = re.compile(r"^data : (\d+) \(should be (\d+)\)", re.MULTILINE)
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # streaming writers leave the size unset: not truncation


def read_wav(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 at `sample_rate`; other rates are resampled, channels averaged.

    Raises DataError naming the file for anything unreadable, empty, truncated (a data chunk
    shorter than its header says) or holding NaN/Inf samples.
    """
    path = Path(path)
    try:
        with sf.SoundFile(str(path)) as f:
            rate, log = f.samplerate, f.extra_info
            data = f.read(dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types; all mean "cannot read"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: unreadable audio ({reason})") from None
    short = _truncated(log)
    if short is not None:
        raise DataError(f"{path}: truncated WAV ({short[0]} of the {short[1]} bytes of audio)")
    if data.shape[0] == 0:
        raise DataError(f"{path}: empty audio (0 samples)")
    bad = int(data.size - np.isfinite(data).sum())
    if bad:
        raise DataError(f"{path}: {bad} samples are NaN or Inf")
    mono = data.mean(axis=1)
    if rate != sample_rate:
        g = gcd(int(rate), sample_rate)
        mono = resample_poly(mono, sample_rate // g, int(rate) // g).astype(np.float32)
    return np.ascontiguousarray(mono, dtype=np.float32)


def _truncated(log: str) -> tuple[int, int] | None:
    """(bytes present, bytes the header claims) when the data chunk was cut short."""
    found = _DATA_CHUNK.search(log)
    if found is None:
        return None
    claimed, present = int(found[1]), int(found[2])
    if claimed in _UNKNOWN_SIZES or present >= claimed - 1:  # -1: a missing pad byte
        return None
    return present, claimed


def fit_length(x: np.ndarray, n: int = CLIP_SAMPLES) -> np.ndarray:
    """Pad with zeros at the end, or crop the end, to exactly n samples."""
    if len(x) >= n:
        return x[:n]
    return np.pad(x, (0, n - len(x)))


def write_wav(path: str | Path, x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """16-bit PCM WAV, written atomically; samples are clipped to [-1, 1]."""
    clipped = np.clip(np.asarray(x, dtype=np.float32), -1.0, 1.0)
    return atomic_write(
        path, lambda p: sf.write(str(p), clipped, sample_rate, subtype="PCM_16", format="WAV")
    )
