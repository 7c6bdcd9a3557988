"""The synthesized corpus: Speech Commands layout, speaker-disjoint splits, repeatable, cached."""

from __future__ import annotations

import csv
import json
import re
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hib.data.protocols import speaker_id, which_set
from hib.data.speech_commands import load_split
from hib.data.synth import corpus
from hib.data.synth.build import corpus_is_complete
from hib.data.synth.corpus import WORDS, SynthConfig, build_corpus
from hib.errors import DataError

from .conftest import TINY

_NAME = re.compile(r"^[0-9a-f]{8}_nohash_\d+\.wav$")


def _wavs(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.glob("*/*.wav"))


def _clips(root: Path) -> list[str]:
    return [rel for rel in _wavs(root) if not rel.startswith(corpus.NOISE_DIR)]


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _split_of(root: Path) -> dict[str, str]:
    validation = set(_lines(root / "validation_list.txt"))
    testing = set(_lines(root / "testing_list.txt"))
    return {
        rel: "validation" if rel in validation else "testing" if rel in testing else "training"
        for rel in _clips(root)
    }


def test_layout_is_speech_commands(tiny_corpus: Path) -> None:
    folders = {p.name for p in tiny_corpus.iterdir() if p.is_dir()}
    assert folders <= {*WORDS, corpus.NOISE_DIR} and corpus.NOISE_DIR in folders
    clips = _clips(tiny_corpus)
    assert len(clips) == TINY.n_clips
    assert all(_NAME.match(Path(rel).name) for rel in clips), clips[:5]
    for rel in clips:
        info = sf.info(tiny_corpus / rel)
        assert (info.samplerate, info.channels, info.frames) == (16000, 1, 16000), rel
        assert info.subtype == "PCM_16", rel


def test_list_files_follow_the_speaker_hash(tiny_corpus: Path) -> None:
    for name, split in (("validation_list.txt", "validation"), ("testing_list.txt", "testing")):
        listed = _lines(tiny_corpus / name)
        assert listed == sorted(listed)
        assert listed == [rel for rel in _clips(tiny_corpus) if which_set(rel) == split]
        assert listed, f"the tiny corpus should have {split} clips"


def test_splits_are_speaker_disjoint(tiny_corpus: Path) -> None:
    splits_of_speaker = defaultdict(set)
    for rel, split in _split_of(tiny_corpus).items():
        splits_of_speaker[speaker_id(rel)].add(split)
    assert all(len(s) == 1 for s in splits_of_speaker.values())
    assert {s for (s,) in splits_of_speaker.values()} == {"training", "validation", "testing"}


def test_speakers_tsv_and_summary(tiny_corpus: Path) -> None:
    with open(tiny_corpus / "speakers.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    spoken = {speaker_id(rel) for rel in _clips(tiny_corpus)}
    assert {r["speaker"] for r in rows} == spoken
    assert {r["engine"] for r in rows} == {"espeak", "piper"}
    for r in rows:
        assert r["split"] == which_set(f"{r['speaker']}_nohash_0.wav")
    meta = json.loads((tiny_corpus / "corpus.json").read_text())
    assert meta["clips"] == TINY.n_clips and meta["seed"] == TINY.seed
    assert sum(meta["clips_per_word"].values()) == TINY.n_clips


def test_training_clean_and_evaluation_degraded(tiny_corpus: Path) -> None:
    """Training clips keep exact digital silence around the word; noisy val/test clips don't."""
    rows = [line.split("\t") for line in _lines(tiny_corpus / "degradations.tsv")[1:]]
    split_of = _split_of(tiny_corpus)
    assert sorted(rel for rel, _, _ in rows) == sorted(
        r for r, s in split_of.items() if s != "training"
    )
    degraded = {rel for rel, kind, _ in rows if kind != "clean"}
    assert degraded and all(
        float(snr) <= TINY.eval_snr_db[1] for _, kind, snr in rows if kind != "clean"
    )
    for rel, split in split_of.items():
        x, _ = sf.read(tiny_corpus / rel, dtype="int16")
        zeros = np.mean(x == 0)
        if split == "training":
            assert zeros > 0.04, rel
        if rel in degraded:
            assert zeros < 0.04, rel


def test_noise_files(tiny_corpus: Path) -> None:
    files = sorted((tiny_corpus / corpus.NOISE_DIR).glob("*.wav"))
    assert len(files) == 6
    for f in files:
        info = sf.info(f)
        assert (info.samplerate, info.frames) == (16000, int(TINY.noise_seconds * 16000)), f


def test_the_loader_reads_it(tiny_corpus: Path) -> None:
    split_of = _split_of(tiny_corpus)
    for split, name in (("train", "training"), ("validation", "validation"), ("test", "testing")):
        words = [c for c in load_split(tiny_corpus, split).clips if not c.is_silence]
        assert len(words) == sum(s == name for s in split_of.values())


def test_same_seed_same_bytes_whatever_the_workers(tiny_corpus: Path, tmp_path: Path) -> None:
    again = build_corpus(tmp_path / "again", TINY, progress=False, workers=1)
    names = _wavs(tiny_corpus) + ["validation_list.txt", "testing_list.txt", "speakers.tsv"]
    assert _wavs(again) == _wavs(tiny_corpus)
    for rel in [*names, "degradations.tsv"]:
        assert (again / rel).read_bytes() == (tiny_corpus / rel).read_bytes(), rel


def test_another_seed_gives_another_corpus(tiny_corpus: Path, tmp_path: Path) -> None:
    other = build_corpus(tmp_path / "other", replace(TINY, seed=1), progress=False, workers=1)
    assert _clips(other) != _clips(tiny_corpus)
    noise = f"{corpus.NOISE_DIR}/white_noise.wav"
    assert (other / noise).read_bytes() != (tiny_corpus / noise).read_bytes()


def test_cached_build_returns_without_work(tiny_corpus: Path) -> None:
    before = {p: p.stat().st_mtime_ns for p in tiny_corpus.rglob("*")}
    start = time.monotonic()
    assert build_corpus(tiny_corpus, TINY, progress=False) == tiny_corpus
    assert time.monotonic() - start < 1.0
    assert {p: p.stat().st_mtime_ns for p in tiny_corpus.rglob("*")} == before
    assert corpus_is_complete(tiny_corpus, TINY)
    assert not corpus_is_complete(tiny_corpus, replace(TINY, eval_clean_fraction=0.5))


def test_interrupted_build_leaves_no_corpus(tmp_path: Path, monkeypatch) -> None:
    def crash(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(corpus, "render_job", crash)
    with pytest.raises(KeyboardInterrupt):
        build_corpus(tmp_path / "c", replace(TINY, n_clips=4), progress=False, workers=1)
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_replace_an_unrelated_folder(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not a synthesized corpus"):
        build_corpus(tmp_path, TINY, progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_bad_config_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="eval_noise_types"):
        build_corpus(tmp_path / "c", SynthConfig(eval_noise_types=("rain",)), progress=False)


def test_place_puts_the_word_inside_one_second() -> None:
    word = np.ones(24000, np.float32)  # 1.5 s: sped up 1.3x, then cropped to max_word_s
    clip = corpus.place(word, np.random.default_rng(0), TINY)
    assert clip.shape == (16000,) and np.abs(clip).max() <= 0.99
    assert np.count_nonzero(clip) <= int(TINY.max_word_s * 16000)
