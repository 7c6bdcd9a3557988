"""The VoxCeleb1 reader on a tiny fixture in the exact layout, and each way a folder is wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from hib.data.voxceleb import collate_sid, load_voxceleb1
from hib.errors import DataError

SR = 16000
# (split code, speaker, video, file, seconds, rate, channels)
UTTERANCES = [
    (1, "id10002", "Zb7fUl3eTfU", "00001.wav", 1.0, 16000, 1),
    (3, "id10002", "Zb7fUl3eTfU", "00002.wav", 0.5, 16000, 1),
    (1, "id10001", "1zcIwhmdeo4", "00001.wav", 0.75, 8000, 2),
    (2, "id10001", "7w0IBEWc9Qw", "00001.wav", 0.5, 44100, 1),
    (3, "id10001", "7w0IBEWc9Qw", "00002.wav", 0.25, 16000, 1),
    (1, "id10003", "_-8PLbqW3aE", "00001.wav", 0.5, 16000, 1),
]


def make_voxceleb(root: Path) -> Path:
    lines = []
    for i, (code, speaker, video, name, seconds, rate, channels) in enumerate(UTTERANCES):
        path = root / "wav" / speaker / video / name
        path.parent.mkdir(parents=True, exist_ok=True)
        noise = np.random.default_rng(i).standard_normal((int(seconds * rate), channels))
        sf.write(str(path), (0.1 * noise).astype(np.float32), rate, subtype="PCM_16")
        lines.append(f"{code} {speaker}/{video}/{name}\n")
    (root / "iden_split.txt").write_text("".join(lines))
    return root


@pytest.fixture
def vox(tmp_path: Path) -> Path:
    return make_voxceleb(tmp_path / "voxceleb1")


def test_reads_each_split_with_one_label_mapping(vox: Path) -> None:
    splits = {s: load_voxceleb1(vox, s) for s in ("train", "validation", "test")}
    for data in splits.values():  # id10003 is only in train, yet a class everywhere
        assert data.classes == ["id10001", "id10002", "id10003"]
    train = splits["train"]
    assert train.ids == [
        "id10002/Zb7fUl3eTfU/00001.wav",
        "id10001/1zcIwhmdeo4/00001.wav",
        "id10003/_-8PLbqW3aE/00001.wav",
    ]
    assert train.labels == [1, 0, 2] and train.speakers == ["id10002", "id10001", "id10003"]
    assert train.videos == ["Zb7fUl3eTfU", "1zcIwhmdeo4", "_-8PLbqW3aE"]
    assert train.durations == pytest.approx([1.0, 0.75, 0.5], abs=1e-3)
    assert splits["test"].labels == [1, 0] and splits["validation"].labels == [0]
    for data in splits.values():
        for (wave, label), seconds, expected in zip(data, data.durations, data.labels, strict=True):
            assert wave.dtype == torch.float32 and wave.ndim == 1  # stereo averaged
            assert len(wave) == pytest.approx(seconds * SR, abs=1)  # 8 and 44.1 kHz resampled
            assert label == expected


def test_subset_keeps_classes_and_shares_the_cache(vox: Path) -> None:
    train = load_voxceleb1(vox, "train").preload()
    part = train.subset([2])
    assert part.labels == [2] and part.classes == train.classes and len(train) == 3
    assert part.audio(part.utterances[0]) is train.audio(train.utterances[2])


def test_collate_pads_and_stacks_labels(vox: Path) -> None:
    train = load_voxceleb1(vox, "train")
    waves, lengths, labels = collate_sid([train[0], train[2]])
    assert waves.shape == (2, SR) and lengths.tolist() == [SR, SR // 2]
    assert labels.dtype == torch.long and labels.tolist() == [1, 2]
    assert torch.all(waves[1, SR // 2 :] == 0)
    torch.testing.assert_close(waves[1, : SR // 2], train[2][0])


def test_missing_list_and_unknown_split(vox: Path) -> None:
    with pytest.raises(DataError, match=r"iden_split.txt: no split 'dev' \(splits: train, valid"):
        load_voxceleb1(vox, "dev")
    (vox / "iden_split.txt").unlink()
    with pytest.raises(DataError, match=r"voxceleb1/iden_split.txt: missing"):
        load_voxceleb1(vox, "train")


@pytest.mark.parametrize(
    "line",
    [
        "4 id10001/1zcIwhmdeo4/00001.wav",
        "1 id10001/00001.wav",
        "1 id10001/1zcIwhmdeo4/00001.flac",
        "1 id10001/../1zcIwhmdeo4/00001.wav",
        "1 /id10001/1zcIwhmdeo4/00001.wav",
        "id10001/1zcIwhmdeo4/00001.wav",
        "1 id10001/1zcIwhmdeo4/00001.wav extra",
    ],
)
def test_a_bad_line_is_named(vox: Path, line: str) -> None:
    listing = vox / "iden_split.txt"
    listing.write_text(listing.read_text() + f"\n{line}\n")
    with pytest.raises(DataError, match=rf"iden_split.txt:8: expected .*got '{line}'"):
        load_voxceleb1(vox, "test")


def test_a_line_listed_twice(vox: Path) -> None:
    listing = vox / "iden_split.txt"
    listing.write_text(listing.read_text() + "2 id10003/_-8PLbqW3aE/00001.wav\n")
    with pytest.raises(DataError, match=r"iden_split.txt:7: id10003/_-8PLbqW3aE/00001.wav is li"):
        load_voxceleb1(vox, "validation")


def test_a_missing_listed_file_is_named_with_its_line(vox: Path) -> None:
    (vox / "wav" / "id10001" / "7w0IBEWc9Qw" / "00002.wav").unlink()
    with pytest.raises(DataError, match=r"iden_split.txt:5: .*7w0IBEWc9Qw/00002.wav is missing"):
        load_voxceleb1(vox, "test")
    assert len(load_voxceleb1(vox, "train")) == 3  # only the split asked for is checked


def test_unreadable_and_empty_wavs_are_named(vox: Path) -> None:
    bad = vox / "wav" / "id10002" / "Zb7fUl3eTfU" / "00002.wav"
    bad.write_bytes(b"RIFF not really a wav")
    with pytest.raises(DataError, match=r"Zb7fUl3eTfU/00002.wav: unreadable audio"):
        load_voxceleb1(vox, "test")
    sf.write(str(bad), np.zeros(0, np.float32), SR, subtype="PCM_16")
    with pytest.raises(DataError, match=r"Zb7fUl3eTfU/00002.wav: empty audio"):
        load_voxceleb1(vox, "test")


def test_a_split_without_utterances(vox: Path) -> None:
    listing = vox / "iden_split.txt"
    listing.write_text("".join(x for x in listing.read_text().splitlines(True) if x[0] != "2"))
    with pytest.raises(DataError, match=r"iden_split.txt: lists no validation utterance \(code 2"):
        load_voxceleb1(vox, "validation")
