"""Property-based fuzzing of what reads user input: only HibErrors escape, never a crash.

Config trees, dotted overrides and config files; the ratio parser; the Speech Commands list
files; the audio reader on random bytes (bare, or behind a valid-looking WAV header).
The LibriSpeech transcript parser is not on this branch yet, so it is not fuzzed here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import struct
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hib.config import Config, config_from_dict, load_config
from hib.data.audio import read_wav
from hib.data.speech_commands import _read_lists
from hib.errors import ConfigError, DataError, HibError
from hib.prune import parse_ratios

FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
EXAMPLES = {"config_tree": 150, "overrides": 150, "config_file": 150, "ratios": 150}
EXAMPLES |= {"ratio_ranges": 150, "list_files": 150, "audio_bytes": 150, "wav_bodies": 150}


def _dotted_keys() -> list[str]:
    keys = []
    for section in dataclasses.fields(Config):
        value = getattr(Config(), section.name)
        if dataclasses.is_dataclass(value):
            keys += [f"{section.name}.{f.name}" for f in dataclasses.fields(value)]
        else:  # a top-level scalar: seed, task
            keys.append(section.name)
    return keys


KEYS = _dotted_keys()
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12))
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
NAMES = st.sampled_from(KEYS + ["train", "data", "nope.key", ""]) | st.text(max_size=10)


def _tree(pairs: list[tuple[str, object]]) -> dict:
    tree: dict = {}
    for key, value in pairs:
        node = tree
        *parents, last = key.split(".")
        for part in parents:
            child = node.get(part)
            node = node.setdefault(part, {}) if child is None or isinstance(child, dict) else {}
        node[last] = value
    return tree


@FUZZ
@given(st.lists(st.tuples(NAMES, VALUES), max_size=6))
def test_config_trees(pairs):
    with contextlib.suppress(ConfigError):
        assert isinstance(config_from_dict(_tree(pairs)), Config)


@FUZZ
@given(
    st.lists(
        st.tuples(NAMES, st.text(max_size=16)).map("=".join) | st.text(max_size=20), max_size=5
    )
)
def test_overrides(overrides):
    with contextlib.suppress(ConfigError):
        assert isinstance(load_config(None, overrides), Config)


@FUZZ
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_config_files(content):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_bytes(content)
        with contextlib.suppress(ConfigError):
            assert isinstance(load_config(path), Config)


def _check_ratios(spec: str) -> None:
    try:
        values = parse_ratios(spec)
    except HibError:
        return
    assert values and all(0 <= r <= 1 for r in values)


@FUZZ
@given(st.text(alphabet="0123456789.,:-+eEinfa ", max_size=20) | st.text(max_size=20))
def test_ratio_specs(spec):
    _check_ratios(spec)


@FUZZ
@given(st.tuples(st.floats(), st.floats(), st.floats()).map(lambda t: ":".join(map(repr, t))))
def test_ratio_ranges(spec):
    _check_ratios(spec)


@FUZZ
@given(st.binary(max_size=120), st.lists(st.text(max_size=20), max_size=5))
def test_list_files(raw, lines):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "yes").mkdir()
        (root / "yes" / "a.wav").write_bytes(b"")
        (root / "validation_list.txt").write_bytes(raw)
        (root / "testing_list.txt").write_text("\n".join(lines), errors="surrogateescape")
        try:
            validation, testing = _read_lists(root)
        except DataError:
            return
        assert all(isinstance(name, str) for name in validation | testing)


def _read(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.wav"
        path.write_bytes(content)
        try:
            x = read_wav(path)
        except DataError:
            return
        assert x.dtype == np.float32 and x.ndim == 1 and len(x) and np.isfinite(x).all()


@FUZZ
@given(st.binary(max_size=400))
def test_audio_reader_on_random_bytes(content):
    _read(content)


def _wav_header(channels: int, rate: int, bits: int, fmt: int, n_data: int) -> bytes:
    block = channels * max(bits // 8, 1)
    fmt_chunk = struct.pack("<HHIIHH", fmt, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt_chunk + b"data"
    riff = (len(body) + 4 + n_data) & 0xFFFFFFFF
    return b"RIFF" + struct.pack("<I", riff) + body + struct.pack("<I", n_data)


@FUZZ
@given(
    st.integers(1, 3),
    st.sampled_from([8000, 16000, 44100, 1, 7]),
    st.sampled_from([8, 16, 24, 32, 64]),
    st.sampled_from([1, 3, 6, 7]),  # PCM, IEEE float, A-law, mu-law
    st.binary(max_size=400),
    st.integers(0, 2**32 - 1),
)
def test_audio_reader_on_random_wav_bodies(channels, rate, bits, fmt, data, claimed):
    _read(_wav_header(channels, rate, bits, fmt, claimed) + data)
