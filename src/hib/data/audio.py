"""Reading and writing 1 s clips: always 16 kHz mono float32, converted rather than rejected."""

from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from hib.errors import DataError
from hib.io import atomic_write

SAMPLE_RATE = 16000
CLIP_SAMPLES = SAMPLE_RATE  # every clip is exactly 1 s


def read_wav(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 at `sample_rate`; other rates are resampled, channels averaged.

    Raises DataError naming the file for anything unreadable or empty.
    """
    path = Path(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types; all mean "cannot read"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: unreadable audio ({reason})") from None
    if data.shape[0] == 0:
        raise DataError(f"{path}: empty audio (0 samples)")
    mono = data.mean(axis=1)
    if rate != sample_rate:
        g = gcd(int(rate), sample_rate)
        mono = resample_poly(mono, sample_rate // g, int(rate) // g).astype(np.float32)
    return np.ascontiguousarray(mono, dtype=np.float32)


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
