"""Training-time augmentation of 1 s clips: background noise at a random SNR, shift and gain.

Real keyword spotting hears words off-centre, at any loudness, over noise; the clean corpus
has few of those, so training sees them synthesized. Evaluation never uses `Augment`.
"""

from __future__ import annotations

import numpy as np
import torch


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """clean + noise scaled so that power(clean) / power(scaled noise) is `snr_db` dB.

    The noise is tiled or cropped to the length of `clean`. A silent clean signal gets no
    noise (any finite SNR over zero power means zero noise), and silent noise adds nothing,
    so the result is never NaN. No clipping: the SNR of the result is exact.
    """
    clean64 = np.asarray(clean, dtype=np.float64)
    noise64 = np.resize(np.asarray(noise, dtype=np.float64), clean64.shape)
    clean_power = np.mean(clean64**2) if clean64.size else 0.0
    noise_power = np.mean(noise64**2) if noise64.size else 0.0
    if clean_power == 0.0 or noise_power == 0.0:
        return clean64.astype(np.float32)
    scale = np.sqrt(clean_power / (noise_power * 10.0 ** (snr_db / 10.0)))
    return (clean64 + scale * noise64).astype(np.float32)


class Augment:
    """Callable x -> augmented x (same length, float32, within [-1, 1]), repeatable by seed.

    Steps, in this order: shift the word by up to `max_shift_s` (zero fill) so the noise
    added next covers the whole clip; with probability `p_noise` add a random cut of a random
    noise at an SNR drawn from `snr_db`; scale by a gain drawn from `gain_db`; clip to [-1, 1].

    In a DataLoader worker the generator is reseeded from (seed, the worker's torch seed), so
    workers don't repeat each other and each epoch's fresh workers draw anew, while a run with
    a fixed torch seed stays repeatable.
    """

    def __init__(
        self,
        noises: list[np.ndarray],
        snr_db: tuple[float, float] = (0.0, 20.0),
        p_noise: float = 0.8,
        max_shift_s: float = 0.1,
        gain_db: tuple[float, float] = (-6.0, 6.0),
        seed: int = 0,
        sample_rate: int = 16000,
    ) -> None:
        self.noises = [np.asarray(n, dtype=np.float32) for n in noises if len(n) > 0]
        self.snr_db = snr_db
        self.p_noise = p_noise
        self.max_shift = int(round(max_shift_s * sample_rate))
        self.gain_db = gain_db
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self._worker_seed: int | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        rng = self._generator()
        y = self._shift(np.asarray(x, dtype=np.float32), rng)
        if self.noises and rng.random() < self.p_noise:
            y = mix_at_snr(y, self._noise_cut(len(y), rng), rng.uniform(*self.snr_db))
        y = y * np.float32(10.0 ** (rng.uniform(*self.gain_db) / 20.0))
        return np.clip(y, -1.0, 1.0).astype(np.float32)

    def _generator(self) -> np.random.Generator:
        info = torch.utils.data.get_worker_info()
        if info is not None and info.seed != self._worker_seed:
            self._worker_seed = info.seed
            self._rng = np.random.default_rng([self.seed, info.seed])
        return self._rng

    def _shift(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        limit = min(self.max_shift, len(x))
        s = int(rng.integers(-limit, limit + 1))
        y = np.zeros_like(x)
        if s >= 0:
            y[s:] = x[: len(x) - s]
        else:
            y[:s] = x[-s:]
        return y

    def _noise_cut(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n samples from a random place of a random noise (tiled if the noise is shorter)."""
        noise = self.noises[int(rng.integers(len(self.noises)))]
        if len(noise) < n:
            return np.resize(noise, n)
        start = int(rng.integers(0, len(noise) - n + 1))
        return noise[start : start + n]
