"""The held-out corpus: unheard voices, every clip in the test split, degraded like test clips."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest

from hib.data.protocols import speaker_id
from hib.data.speech_commands import load_split
from hib.data.synth import corpus, espeak
from hib.data.synth.build import corpus_is_complete
from hib.data.synth.corpus import SynthConfig, build_corpus, holdout_config
from hib.errors import DataError

from .conftest import TINY

HOLDOUT = replace(holdout_config(n_clips=40), noise_seconds=12.0)


@pytest.fixture(scope="module")
def holdout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("holdout") / "corpus"
    return build_corpus(out, HOLDOUT, progress=False, workers=1)


def _clips(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.glob("*/*.wav") if p.parent.name != corpus.NOISE_DIR
    )


def test_holdout_config_is_espeak_only_with_unheard_accents() -> None:
    config = holdout_config()
    assert config.n_clips == 1500 and config.piper_fraction == 0 and config.all_test
    assert config.seed != SynthConfig().seed
    assert config.accents and not set(config.accents) & set(espeak.ACCENTS)
    difficulty = {"n_clips", "seed", "piper_fraction", "accents", "all_test"}
    for field in set(SynthConfig.__dataclass_fields__) - difficulty:
        assert getattr(config, field) == getattr(SynthConfig(), field), field


def test_every_clip_is_a_degraded_test_clip(holdout: Path) -> None:
    clips = _clips(holdout)
    assert len(clips) == HOLDOUT.n_clips
    assert (holdout / "testing_list.txt").read_text().splitlines() == clips
    assert (holdout / "validation_list.txt").read_text() == ""
    rows = (holdout / "degradations.tsv").read_text().splitlines()[1:]
    assert [row.split("\t")[0] for row in rows] == clips
    assert any(row.split("\t")[1] != "clean" for row in rows)
    meta = json.loads((holdout / "corpus.json").read_text())
    assert meta["clips_per_split"] == {"training": 0, "validation": 0, "testing": len(clips)}


def test_the_loader_sees_only_a_test_split(holdout: Path) -> None:
    test = load_split(holdout, "test").clips
    assert sum(not c.is_silence for c in test) == HOLDOUT.n_clips
    assert any(c.is_silence for c in test)
    assert len(load_split(holdout, "train")) == 0
    assert len(load_split(holdout, "validation")) == 0


def test_speakers_are_held_out_accents(holdout: Path) -> None:
    with open(holdout / "speakers.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert {r["speaker"] for r in rows} == {speaker_id(rel) for rel in _clips(holdout)}
    assert {r["engine"] for r in rows} == {"espeak"}
    assert {r["split"] for r in rows} == {"testing"}
    assert {r["voice"] for r in rows} <= set(HOLDOUT.accents)
    assert not {r["voice"] for r in rows} & set(espeak.ACCENTS)


def test_new_fields_are_in_the_cache_key(holdout: Path) -> None:
    assert corpus_is_complete(holdout, HOLDOUT)
    assert not corpus_is_complete(holdout, replace(HOLDOUT, all_test=False))
    assert not corpus_is_complete(holdout, replace(HOLDOUT, accents=HOLDOUT.accents[:-1]))


def test_all_test_only_moves_clips(tiny_corpus: Path, tmp_path: Path) -> None:
    """Same speakers and words; evaluation clips keep their bytes, training clips get degraded."""
    moved = build_corpus(tmp_path / "c", replace(TINY, all_test=True), progress=False, workers=1)
    assert _clips(moved) == _clips(tiny_corpus)
    evaluated = set((tiny_corpus / "degradations.tsv").read_text().splitlines()[1:])
    assert evaluated < set((moved / "degradations.tsv").read_text().splitlines()[1:])
    for line in evaluated:
        rel = line.split("\t")[0]
        assert (moved / rel).read_bytes() == (tiny_corpus / rel).read_bytes(), rel


def test_no_accents_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="accents"):
        build_corpus(tmp_path / "c", replace(TINY, accents=()), progress=False)
