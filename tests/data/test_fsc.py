"""The Fluent Speech Commands reader on a tiny fixture in the real layout, and how it breaks."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from hib.data.fsc import INTENTS, SLOTS, VOCABULARY, collate_ic, encode, load_fsc
from hib.errors import DataError

SR = 16000
HEADER = ["", "path", "speakerId", "transcription", "action", "object", "location"]
# (split file, speaker, file, seconds, rate, channels, transcription, action, object, location)
ROWS = [
    ("train", "2BqVo8kV", "0a31", 1.0, 16000, 1, "Language", "change language", "none", "none"),
    ("train", "2BqVo8kV", "0ee4", 0.5, 16000, 1, "Lights on", "activate", "lights", "kitchen"),
    ("train", "4BrX8aDq", "1b3c", 0.75, 8000, 2, "Bring me my socks", "bring", "socks", "none"),
    ("valid", "52XVOeXM", "2c4d", 0.6, 44100, 1, "Use German", "change language", "German", "none"),
    ("test", "9MX3AgZz", "3d5e", 0.8, 16000, 1, "Heat down", "decrease", "heat", "washroom"),
]


def _wav(root: Path, speaker: str, name: str, seconds: float, rate: int, channels: int) -> str:
    rel = f"wavs/speakers/{speaker}/{name}.wav"
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(len(rel)).standard_normal((int(seconds * rate), channels))
    sf.write(str(root / rel), (0.1 * noise).astype(np.float32), rate, subtype="PCM_16")
    return rel


def _write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows([[str(i), *row] for i, row in enumerate(rows)])


def make_fsc(root: Path) -> Path:
    tables: dict[str, list[list[str]]] = {"train": [], "valid": [], "test": []}
    for split, speaker, name, seconds, rate, channels, text, *slots in ROWS:
        rel = _wav(root, speaker, name, seconds, rate, channels)
        tables[split].append([rel, speaker, text, *slots])
    for split, rows in tables.items():
        _write_csv(root / "data" / f"{split}_data.csv", rows)
    return root


@pytest.fixture
def fsc(tmp_path: Path) -> Path:
    return make_fsc(tmp_path / "fluent_speech_commands_dataset")


def _table(fsc: Path, split: str = "train") -> Path:
    return fsc / "data" / f"{split}_data.csv"


def _rewrite(fsc: Path, column: str, value: str, row: int = 1) -> None:
    """Set one field of a data row of train_data.csv."""
    with open(_table(fsc), newline="") as f:
        header, *rows = list(csv.reader(f))
    rows[row][header.index(column)] = value
    _write_csv(_table(fsc), [r[1:] for r in rows], header)


def test_the_inventory_is_fscs() -> None:
    assert [len(VOCABULARY[s]) for s in SLOTS] == [6, 14, 4]
    assert len(INTENTS) == len(set(INTENTS)) == 31
    used = {slot: {intent[k] for intent in INTENTS} for k, slot in enumerate(SLOTS)}
    assert all(used[s] == set(VOCABULARY[s]) for s in SLOTS)  # every value occurs in some intent
    assert ("increase", "heat", "bedroom") in INTENTS and ("bring", "juice", "none") in INTENTS
    assert ("increase", "volume", "kitchen") not in INTENTS
    assert encode(("bring", "shoes", "none")) == (1, 9, 0)


def test_reads_every_split(fsc: Path) -> None:
    train = load_fsc(fsc, "train")
    assert train.speakers == ["2BqVo8kV", "2BqVo8kV", "4BrX8aDq"]
    assert train.texts[1] == "Lights on"
    assert train.ids[2] == "wavs/speakers/4BrX8aDq/1b3c.wav"
    assert train.labels.tolist() == [[2, 0, 0], [0, 2, 1], [1, 8, 0]]
    assert train.durations == pytest.approx([1.0, 0.5, 0.75], abs=1e-3)
    for (wave, labels), seconds in zip(train, train.durations, strict=True):
        assert wave.dtype == torch.float32 and wave.ndim == 1  # stereo averaged
        assert len(wave) == pytest.approx(seconds * SR, abs=1)  # 8 kHz resampled
        assert labels.dtype == torch.long and labels.shape == (3,)
    assert train.slots["object"][8] == "socks" and list(train.slots) == list(SLOTS)
    sub = train.subset([2, 0])
    assert type(sub) is type(train) and sub.labels[:, 1].tolist() == [8, 0]
    assert load_fsc(fsc, "validation").labels.tolist() == [[2, 13, 0]]  # valid_data.csv
    (test,) = load_fsc(fsc, "test").preload()
    assert len(test[0]) == int(0.8 * SR) and test[1].tolist() == [4, 4, 3]


def test_collate_pads_and_stacks(fsc: Path) -> None:
    train = load_fsc(fsc, "train")
    waves, lengths, labels = collate_ic([train[0], train[1]])
    assert waves.shape == (2, SR) and lengths.tolist() == [SR, SR // 2]
    assert torch.all(waves[1, SR // 2 :] == 0) and labels.tolist() == [[2, 0, 0], [0, 2, 1]]


def test_unknown_split_and_missing_csv(fsc: Path) -> None:
    with pytest.raises(DataError, match=r"unknown split 'valid' .*'validation'"):
        load_fsc(fsc, "valid")
    _table(fsc, "test").unlink()
    with pytest.raises(DataError, match=r"test_data.csv: no such file .*data/\{train,valid,test\}"):
        load_fsc(fsc, "test")


def test_missing_column(fsc: Path) -> None:
    _write_csv(_table(fsc), [["a.wav", "s", "t", "bring", "socks"]], HEADER[:-1])
    with pytest.raises(DataError, match=r"train_data.csv: no column 'location'"):
        load_fsc(fsc, "train")


def test_unknown_slot_value_names_csv_and_line(fsc: Path) -> None:
    _rewrite(fsc, "object", "curtains")
    with pytest.raises(DataError, match=r"train_data.csv: line 3: unknown object 'curtains'"):
        load_fsc(fsc, "train")


def test_short_row(fsc: Path) -> None:
    with open(_table(fsc), "a") as f:
        f.write("3,wavs/x.wav,spk\n")
    with pytest.raises(DataError, match=r"line 5: 3 fields, the header has 7"):
        load_fsc(fsc, "train")


def test_missing_and_unreadable_audio(fsc: Path) -> None:
    wav = fsc / "wavs/speakers/4BrX8aDq/1b3c.wav"
    wav.write_bytes(b"not audio at all")
    with pytest.raises(DataError, match=r"line 4: .*1b3c.wav: unreadable audio") as info:
        load_fsc(fsc, "train")
    assert "\n" not in str(info.value)
    wav.unlink()
    with pytest.raises(DataError, match=r"line 4: .*1b3c.wav: no such audio file"):
        load_fsc(fsc, "train")


def test_header_only_and_not_utf8(fsc: Path) -> None:
    _write_csv(_table(fsc), [])
    with pytest.raises(DataError, match="train_data.csv: holds no utterances"):
        load_fsc(fsc, "train")
    _table(fsc).write_bytes(b"\xff\xfe,path\n")
    with pytest.raises(DataError, match="train_data.csv: not a readable csv"):
        load_fsc(fsc, "train")
