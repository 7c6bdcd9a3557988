from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from hib.data.augment import Augment, mix_at_snr

from .conftest import tone


def snr_db(clean: np.ndarray, mixed: np.ndarray) -> float:
    noise = mixed.astype(np.float64) - clean
    return float(10 * np.log10(np.mean(clean.astype(np.float64) ** 2) / np.mean(noise**2)))


@pytest.fixture
def noises() -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [0.3 * rng.standard_normal(n).astype(np.float32) for n in (40000, 20000)]


@pytest.mark.parametrize("target", [-5.0, 0.0, 7.5, 20.0])
def test_mix_at_snr_hits_the_target(noises: list[np.ndarray], target: float) -> None:
    clean = tone(440)
    mixed = mix_at_snr(clean, noises[0][:16000], target)
    assert mixed.dtype == np.float32 and mixed.shape == clean.shape
    assert snr_db(clean, mixed) == pytest.approx(target, abs=0.01)


def test_mix_at_snr_tiles_short_noise(noises: list[np.ndarray]) -> None:
    clean = tone(440)
    mixed = mix_at_snr(clean, noises[0][:1000], 10.0)
    assert mixed.shape == clean.shape
    assert snr_db(clean, mixed) == pytest.approx(10.0, abs=0.01)


def test_mix_at_snr_silent_inputs_give_no_nan(noises: list[np.ndarray]) -> None:
    silent = np.zeros(16000, dtype=np.float32)
    out = mix_at_snr(silent, noises[0], 10.0)
    assert np.isfinite(out).all() and not out.any()
    clean = tone(440)
    np.testing.assert_array_equal(mix_at_snr(clean, silent, 10.0), clean)
    assert mix_at_snr(np.zeros(0, dtype=np.float32), noises[0], 5.0).shape == (0,)


def test_augment_is_repeatable_by_seed(noises: list[np.ndarray]) -> None:
    x = tone(440)
    a, b, c = Augment(noises, seed=0), Augment(noises, seed=0), Augment(noises, seed=1)
    outs_a = [a(x) for _ in range(5)]
    outs_b = [b(x) for _ in range(5)]
    outs_c = [c(x) for _ in range(5)]
    for ya, yb, yc in zip(outs_a, outs_b, outs_c, strict=True):
        np.testing.assert_array_equal(ya, yb)
        assert not np.array_equal(ya, yc)
        assert ya.dtype == np.float32 and ya.shape == x.shape
        assert np.abs(ya).max() <= 1.0
    assert not np.array_equal(outs_a[0], outs_a[1])  # successive calls draw anew


def test_augment_does_not_modify_its_input(noises: list[np.ndarray]) -> None:
    x = tone(440)
    Augment(noises)(x)
    np.testing.assert_array_equal(x, tone(440))


def test_augment_with_everything_off_is_identity(noises: list[np.ndarray]) -> None:
    x = tone(440)
    aug = Augment(noises, p_noise=0.0, max_shift_s=0.0, gain_db=(0.0, 0.0))
    np.testing.assert_array_equal(aug(x), x)


def test_shift_zero_fills_within_the_limit() -> None:
    x = np.linspace(0.1, 0.9, 16000, dtype=np.float32)
    aug = Augment([], max_shift_s=0.1, gain_db=(0.0, 0.0), seed=5)
    shifts = set()
    for _ in range(20):
        y = aug(x)
        zeros = np.flatnonzero(y == 0)
        shift = len(zeros) if not len(zeros) or zeros[0] == 0 else -len(zeros)
        shifts.add(shift)
        assert abs(shift) <= 1600
        if shift >= 0:
            np.testing.assert_array_equal(y[shift:], x[: 16000 - shift])
        else:
            np.testing.assert_array_equal(y[:shift], x[-shift:])
    assert len(shifts) > 10


def test_noise_is_added_at_the_drawn_snr(noises: list[np.ndarray]) -> None:
    x = 0.2 * tone(440)
    aug = Augment(noises, snr_db=(12.0, 12.0), p_noise=1.0, max_shift_s=0.0, gain_db=(0, 0))
    for _ in range(5):
        assert snr_db(x, aug(x)) == pytest.approx(12.0, abs=0.05)


def test_gain_stays_in_range_and_output_is_clipped() -> None:
    x = 0.25 * np.ones(16000, dtype=np.float32)
    aug = Augment([], max_shift_s=0.0, gain_db=(-6.0, 6.0))
    gains_db = np.array([20 * np.log10(aug(x)[0] / 0.25) for _ in range(300)])
    assert gains_db.min() >= -6.0 - 1e-4 and gains_db.max() <= 6.0 + 1e-4
    assert gains_db.min() < -5.0 and gains_db.max() > 5.0
    loud = Augment([], max_shift_s=0.0, gain_db=(6.0, 6.0))(0.9 * np.ones(10, dtype=np.float32))
    np.testing.assert_array_equal(loud, np.ones(10, dtype=np.float32))


def test_noise_probability(noises: list[np.ndarray]) -> None:
    x = tone(440)
    aug = Augment(noises, p_noise=0.3, max_shift_s=0.0, gain_db=(0.0, 0.0), seed=2)
    noisy = sum(not np.array_equal(aug(x), x) for _ in range(400))
    assert 80 < noisy < 160


def test_dataloader_workers_draw_differently(
    noises: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    x = tone(440)

    def in_worker(seed: int) -> np.ndarray:
        monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: SimpleNamespace(seed=seed))
        return Augment(noises, seed=0)(x)

    np.testing.assert_array_equal(in_worker(100), in_worker(100))
    assert not np.array_equal(in_worker(100), in_worker(101))
