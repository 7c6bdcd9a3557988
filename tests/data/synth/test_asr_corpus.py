"""The synthesized ASR corpus: LibriSpeech layout read back by the reader, disjoint voices, bytes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from hib.cli import main
from hib.data.librispeech import load_librispeech
from hib.data.synth.asr_corpus import SPLITS, ASRSynthConfig, build_asr_corpus, plan
from hib.errors import DataError

TINY = ASRSynthConfig(
    utterances=(4, 3, 4), speakers=(2, 2, 2), piper_fraction=0.34, noise_seconds=14.0
)


@pytest.fixture(scope="module")
def tiny_asr(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_asr_corpus(tmp_path_factory.mktemp("asr") / "corpus", TINY, progress=False)


def _digest(root: Path) -> str:
    """Every file's bytes except corpus.json (it records the build time)."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "corpus.json")
    blob = b"".join(p.relative_to(root).as_posix().encode() + p.read_bytes() for p in files)
    return hashlib.sha256(blob).hexdigest()


def _table(root: Path) -> list[dict[str, str]]:
    header, *lines = (root / "utterances.tsv").read_text().splitlines()
    return [dict(zip(header.split("\t"), line.split("\t"), strict=True)) for line in lines]


def test_the_librispeech_reader_reads_every_split(tiny_asr: Path) -> None:
    rows = {r["id"]: r for r in _table(tiny_asr)}
    for split, count in zip(SPLITS.values(), TINY.utterances, strict=True):
        data = load_librispeech(tiny_asr, split)
        assert len(data) == count
        for utt, text, seconds in zip(data.ids, data.texts, data.durations, strict=True):
            assert rows[utt]["split"] == split and rows[utt]["text"] == text
            assert text == text.upper() and len(text.split()) >= TINY.min_words[0]
            assert TINY.seconds[0] <= seconds <= TINY.seconds[1]
        wave, _ = data[0]
        assert abs(len(wave) / 16000 - data.durations[0]) < 1e-3


def test_speakers_are_disjoint_and_both_engines_read(tiny_asr: Path) -> None:
    voices = {s: set(load_librispeech(tiny_asr, s).speakers) for s in SPLITS.values()}
    assert all(len(v) == 2 for v in voices.values())
    train, dev, test = voices.values()
    assert not (train & test) and not (dev & test) and not (train & dev)
    summary = json.loads((tiny_asr / "corpus.json").read_text())
    assert summary["speakers_per_engine"] == {"piper": 2, "espeak": 4}
    header, *lines = (tiny_asr / "speakers.tsv").read_text().splitlines()
    identity = {}  # synthesis settings, not folder numbers: no voice reads in two splits
    for line in lines:
        number, *settings, split = line.split("\t")
        identity.setdefault(split, set()).add(tuple(settings))
        assert number in voices[split]
    assert not (identity["test"] & (identity["train"] | identity["dev"]))
    assert len({j.speaker.id for j in plan(TINY)}) == 6


def test_training_is_clean_and_evaluation_partly_degraded(tiny_asr: Path) -> None:
    rows = _table(tiny_asr)
    assert {r["noise"] for r in rows if r["split"] == "train"} == {"clean"}
    noisy = [r for r in rows if r["split"] != "train" and r["noise"] != "clean"]
    assert noisy and all(10.0 <= float(r["snr_db"]) <= 25.0 for r in noisy)


def test_same_seed_same_bytes_and_cached(tiny_asr: Path, tmp_path: Path) -> None:
    again = build_asr_corpus(tmp_path / "again", TINY, progress=False, workers=1)
    assert _digest(again) == _digest(tiny_asr)
    stamp = (again / "corpus.json").stat().st_mtime_ns
    assert build_asr_corpus(again, TINY, progress=False) == again
    assert (again / "corpus.json").stat().st_mtime_ns == stamp


def test_bad_config_and_cli_misuse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(DataError, match="1 <= speakers <= utterances"):
        build_asr_corpus(tmp_path / "x", ASRSynthConfig(utterances=(1, 1, 1)))
    assert main(["data", "synth", "--task", "asr", "--holdout", "--out", str(tmp_path)]) == 2
    assert "--holdout is for the keyword corpus" in capsys.readouterr().err
