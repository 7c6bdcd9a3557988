"""`eval.precision: auto`: bf16 only where this machine runs it faster, decided once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hib.precision import AUTO_FILE, bf16_time_ratio, machine_key, resolve_precision


def _never() -> float:
    raise AssertionError("measured although the answer was known")


def test_no_native_bf16_means_float32_without_measuring(tmp_path: Path):
    got = resolve_precision("auto", tmp_path, measure=_never, native=lambda: False)
    assert got == "float32"
    assert not (tmp_path / AUTO_FILE).exists()


@pytest.mark.parametrize(("ratio", "expected"), [(1.5, "float32"), (0.79, "bfloat16")])
def test_auto_follows_the_measurement(tmp_path: Path, ratio: float, expected: str):
    got = resolve_precision("auto", tmp_path, measure=lambda: ratio, native=lambda: True)
    assert got == expected
    stored = json.loads((tmp_path / AUTO_FILE).read_text())
    assert stored[machine_key()] == {"bf16_time_ratio": ratio}
    # measured once per machine: the next call reads the cache
    assert resolve_precision("auto", tmp_path, measure=_never, native=lambda: True) == expected


def test_a_corrupt_cache_is_measured_again(tmp_path: Path):
    (tmp_path / AUTO_FILE).write_text("{not json")
    got = resolve_precision("auto", tmp_path, measure=lambda: 2.0, native=lambda: True)
    assert got == "float32"
    assert json.loads((tmp_path / AUTO_FILE).read_text())[machine_key()]["bf16_time_ratio"] == 2.0


def test_forced_precisions_are_kept_and_unknown_ones_refused(tmp_path: Path):
    for forced in ("float32", "bfloat16"):
        assert resolve_precision(forced, tmp_path, measure=_never, native=lambda: False) == forced
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        resolve_precision("fp16", tmp_path)


def test_the_measurement_is_a_positive_ratio():
    assert bf16_time_ratio(shape=(64, 32, 32), repeats=2) > 0


def test_the_measurement_leaves_the_global_rng_alone():
    """Training is resumable bit for bit: a first-use measurement must not shift its draws."""
    import torch

    before = torch.random.get_rng_state()
    bf16_time_ratio(shape=(8, 8, 8), repeats=1)
    assert torch.equal(torch.random.get_rng_state(), before)
