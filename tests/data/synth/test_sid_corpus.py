"""The synthesized SID corpus: VoxCeleb1 layout read back, same speakers everywhere, bytes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest
import soundfile as sf

from hib.cli import main
from hib.data.synth.sid_corpus import SPLITS, SIDSynthConfig, build_sid_corpus, plan
from hib.data.voxceleb import load_voxceleb1
from hib.errors import DataError

TINY = SIDSynthConfig(
    speakers=4,
    utterances=(3, 2, 2),
    videos=(2, 1, 1),
    piper_fraction=0.25,
    eval_clean_fraction=0.3,
    noise_seconds=8.0,
)


@pytest.fixture(scope="module")
def tiny_sid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built with two worker processes, as `build_sid_corpus` runs by default."""
    return build_sid_corpus(tmp_path_factory.mktemp("sid") / "corpus", TINY, progress=False)


def _digest(root: Path) -> str:
    """Every file's bytes except corpus.json (it records the build time)."""
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.name != "corpus.json")
    blob = b"".join(p.relative_to(root).as_posix().encode() + p.read_bytes() for p in files)
    return hashlib.sha256(blob).hexdigest()


def _table(root: Path, name: str) -> list[dict[str, str]]:
    header, *lines = (root / name).read_text().splitlines()
    return [dict(zip(header.split("\t"), line.split("\t"), strict=True)) for line in lines]


def test_the_voxceleb_reader_reads_every_split(tiny_sid: Path) -> None:
    rows = {r["path"]: r for r in _table(tiny_sid, "utterances.tsv")}
    wavs = sorted(p.relative_to(tiny_sid / "wav").as_posix() for p in tiny_sid.rglob("*.wav"))
    assert sorted(rows) == wavs  # every file listed once, nothing else on disk
    for split, per_speaker in zip(SPLITS, TINY.utterances, strict=True):
        data = load_voxceleb1(tiny_sid, split)
        assert len(data) == TINY.speakers * per_speaker
        assert data.classes == [f"id{10001 + k}" for k in range(TINY.speakers)]
        for utt, seconds in zip(data.ids, data.durations, strict=True):
            assert rows[utt]["split"] == split
            assert TINY.seconds[0] <= seconds <= TINY.seconds[1]
            assert len(rows[utt]["text"].split()) >= TINY.min_words[0]
        info = sf.info(str(data.utterances[0].path))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")


def test_same_speakers_in_every_split_with_disjoint_utterances(tiny_sid: Path) -> None:
    splits = {s: load_voxceleb1(tiny_sid, s) for s in SPLITS}
    for split, per_speaker in zip(SPLITS, TINY.utterances, strict=True):
        counts = {c: splits[split].labels.count(i) for i, c in enumerate(splits[split].classes)}
        assert set(counts.values()) == {per_speaker}  # every speaker, the same number each
    ids = [set(d.ids) for d in splits.values()]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    texts = {}  # the same speaker never says one sentence in two splits
    for row in _table(tiny_sid, "utterances.tsv"):
        texts.setdefault((row["path"].split("/")[0], row["text"]), set()).add(row["split"])
    assert all(len(where) == 1 for where in texts.values())


def test_identities_differ_beyond_one_setting(tiny_sid: Path) -> None:
    speakers = _table(tiny_sid, "speakers.tsv")
    assert sorted(s["engine"] for s in speakers) == ["espeak", "espeak", "espeak", "piper"]
    espeak = [(s["voice"], s["variant"]) for s in speakers if s["engine"] == "espeak"]
    assert len(set(espeak)) == len(espeak)  # each espeak-ng speaker its own accent x variant
    jobs = plan(TINY)
    assert [j.folder for j in jobs] == [s["speaker"] for s in speakers]
    for job in jobs:  # sessions: 2 in train, 1 each in validation and test, never shared
        where = {}
        for take in job.takes:
            where.setdefault(take.video, set()).add(take.split)
        assert all(len(splits) == 1 and len(v) == 11 for v, splits in where.items())
        assert sorted(next(iter(s)) for s in where.values()) == ["test", "train", "train", "validation"]
        for video in where:
            numbers = sorted(t.number for t in job.takes if t.video == video)
            assert numbers == list(range(1, len(numbers) + 1))


def test_training_is_clean_and_evaluation_partly_degraded(tiny_sid: Path) -> None:
    rows = _table(tiny_sid, "utterances.tsv")
    assert {r["noise"] for r in rows if r["split"] == "train"} == {"clean"}
    evaluated = [r for r in rows if r["split"] != "train"]
    noisy = [r for r in evaluated if r["noise"] != "clean"]
    assert 0 < len(noisy) < len(evaluated)
    assert all(TINY.eval_snr_db[0] <= float(r["snr_db"]) <= TINY.eval_snr_db[1] for r in noisy)
    summary = json.loads((tiny_sid / "corpus.json").read_text())
    assert sum(summary["noisy_per_split"].values()) == len(noisy)


def test_same_config_same_bytes_cached_and_rebuilt_on_change(tiny_sid: Path, tmp_path: Path) -> None:
    again = build_sid_corpus(tmp_path / "again", TINY, workers=1, progress=False)
    assert _digest(again) == _digest(tiny_sid)
    stamp = (again / "corpus.json").stat().st_mtime_ns
    assert build_sid_corpus(again, TINY, progress=False) == again
    assert (again / "corpus.json").stat().st_mtime_ns == stamp
    louder = replace(TINY, level_dbfs=(-12.0, -6.0), piper_fraction=0.0)
    build_sid_corpus(again, louder, progress=False)
    assert json.loads((again / "corpus.json").read_text())["config_key"] == louder.key()
    assert _digest(again) != _digest(tiny_sid)


def test_bad_config_and_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(DataError, match="1 <= videos <= utterances"):
        build_sid_corpus(tmp_path / "x", replace(TINY, videos=(2, 3, 1)))
    with pytest.raises(DataError, match="noise_seconds must exceed"):
        build_sid_corpus(tmp_path / "x", replace(TINY, noise_seconds=5.0))
    assert main(["data", "synth", "--task", "sid", "--holdout", "--out", str(tmp_path)]) == 2
    assert "--holdout is for the keyword corpus" in capsys.readouterr().err
    built = tmp_path / "built"  # a finished build of the default config: the CLI reuses it
    built.mkdir()
    (built / "corpus.json").write_text(json.dumps({"config_key": SIDSynthConfig(seed=3).key()}))
    assert main(["data", "synth", "--task", "sid", "--seed", "3", "--out", str(built)]) == 0
    assert capsys.readouterr().out.strip() == f"corpus: {built}"
