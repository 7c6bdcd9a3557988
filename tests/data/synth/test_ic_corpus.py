"""The synthesized IC corpus: FSC layout read back by the reader, valid intents, voices, bytes."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from hib.cli import main
from hib.data.fsc import INTENTS, SLOTS, VOCABULARY, load_fsc
from hib.data.synth.commands import PHRASINGS
from hib.data.synth.ic_corpus import ICSynthConfig, build_ic_corpus, plan
from hib.errors import DataError

TINY = ICSynthConfig(
    utterances=(8, 4, 4), speakers=(2, 2, 2), piper_fraction=0.34, noise_seconds=10.0
)
SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="module")
def tiny_ic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_ic_corpus(tmp_path_factory.mktemp("ic") / "corpus", TINY, progress=False)


def _digest(root: Path) -> str:
    """Every file's bytes except corpus.json (it records the build time)."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "corpus.json")
    blob = b"".join(p.relative_to(root).as_posix().encode() + p.read_bytes() for p in files)
    return hashlib.sha256(blob).hexdigest()


def _intents(data) -> list[tuple[str, ...]]:
    return [tuple(VOCABULARY[s][i] for s, i in zip(SLOTS, row, strict=True)) for row in data.labels]


def test_the_fsc_reader_reads_every_split(tiny_ic: Path) -> None:
    wording = {p: intent for intent, texts in PHRASINGS.items() for p in texts}
    for split, count in zip(SPLITS, TINY.utterances, strict=True):
        data = load_fsc(tiny_ic, split)
        assert len(data) == count
        for text, intent, seconds in zip(data.texts, _intents(data), data.durations, strict=True):
            assert wording[text[0].lower() + text[1:]] == intent  # the label is the text's
            assert text[0].isupper() and 0.3 < seconds <= TINY.max_seconds
        wave, labels = data[0]
        assert abs(len(wave) / 16000 - data.durations[0]) < 1e-3 and labels.shape == (3,)


def test_every_intent_is_valid_and_dealt_evenly() -> None:
    config = replace(TINY, utterances=(70, 31, 40))
    for split, total in zip(SPLITS, config.utterances, strict=True):
        dealt = Counter(i for j in plan(config) if j.split == split for i in j.intents)
        assert sum(dealt.values()) == total
        assert set(dealt) <= set(range(len(INTENTS)))
        assert max(dealt.values()) - min(dealt.get(i, 0) for i in range(len(INTENTS))) <= 1


def test_phrasings_belong_to_one_intent_each() -> None:
    assert set(PHRASINGS) == set(INTENTS)
    texts = [t for wordings in PHRASINGS.values() for t in wordings]
    assert len(texts) == len(set(texts)) and min(map(len, PHRASINGS.values())) >= 5
    on, off = (PHRASINGS[(act, "lights", "kitchen")] for act in ("activate", "deactivate"))
    assert {t.replace(" on", " off") for t in on} == set(off)  # one word apart, as in FSC


def test_speakers_are_disjoint_and_both_engines_read(tiny_ic: Path) -> None:
    voices = {s: set(load_fsc(tiny_ic, s).speakers) for s in SPLITS}
    assert all(len(v) == 2 for v in voices.values())
    train, validation, test = voices.values()
    assert not (train & test) and not (validation & test) and not (train & validation)
    summary = json.loads((tiny_ic / "corpus.json").read_text())
    assert summary["speakers_per_engine"] == {"piper": 2, "espeak": 4}
    _, *lines = (tiny_ic / "speakers.tsv").read_text().splitlines()
    identity: dict[str, set[tuple[str, ...]]] = {}
    for line in lines:
        speaker, *settings, split = line.split("\t")
        identity.setdefault(split, set()).add(tuple(settings))
        assert speaker in voices[split]
    assert not (identity["test"] & (identity["train"] | identity["validation"]))


def test_training_is_clean_and_evaluation_partly_degraded(tiny_ic: Path) -> None:
    _, *lines = (tiny_ic / "degradations.tsv").read_text().splitlines()
    rows = [line.split("\t") for line in lines]
    evaluated = {u for s in SPLITS[1:] for u in load_fsc(tiny_ic, s).ids}
    assert {path for path, _, _ in rows} == evaluated  # training files are never degraded
    noisy = [float(snr) for _, kind, snr in rows if kind != "clean"]
    assert noisy and all(TINY.eval_snr_db[0] <= snr <= TINY.eval_snr_db[1] for snr in noisy)


def test_same_config_same_bytes_cached_and_rebuilt_on_change(tiny_ic: Path, tmp_path: Path) -> None:
    again = build_ic_corpus(tmp_path / "again", TINY, workers=1, progress=False)
    assert _digest(again) == _digest(tiny_ic)
    stamp = (again / "corpus.json").stat().st_mtime_ns
    assert build_ic_corpus(again, TINY, progress=False) == again
    assert (again / "corpus.json").stat().st_mtime_ns == stamp
    other = replace(TINY, eval_snr_db=(0.0, 3.0))
    build_ic_corpus(again, other, workers=1, progress=False)
    assert json.loads((again / "corpus.json").read_text())["config_key"] == other.key()
    assert _digest(again) != _digest(tiny_ic)


def test_bad_config_and_cli_misuse(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(DataError, match="1 <= speakers <= utterances"):
        build_ic_corpus(tmp_path / "x", ICSynthConfig(utterances=(1, 1, 1)))
    with pytest.raises(DataError, match="noise_seconds must exceed max_seconds"):
        build_ic_corpus(tmp_path / "x", replace(TINY, noise_seconds=5.0))
    assert main(["data", "synth", "--task", "ic", "--holdout", "--out", str(tmp_path)]) == 2
    assert "--holdout is for the keyword corpus" in capsys.readouterr().err
