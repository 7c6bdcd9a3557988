from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from hib.data.audio import CLIP_SAMPLES, read_wav
from hib.data.protocols import which_set
from hib.data.speech_commands import (
    CLASSES,
    KEYWORDS,
    SILENCE_LABEL,
    UNKNOWN_LABEL,
    Clip,
    KSDataset,
    background_noises,
    balanced_sampler,
    class_counts,
    load_split,
)
from hib.errors import DataError

from .conftest import NOISE_SECONDS, WORDS, Corpus, tone, write


def word_rels(ds: KSDataset, root: Path) -> set[str]:
    return {c.path.relative_to(root).as_posix() for c in ds.clips if not c.is_silence}


def silence(ds: KSDataset) -> list[Clip]:
    return [c for c in ds.clips if c.is_silence]


def test_classes_are_the_twelve_in_order() -> None:
    keywords = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
    assert (*keywords, "_unknown_", "_silence_") == CLASSES
    assert (UNKNOWN_LABEL, SILENCE_LABEL) == (10, 11)


def test_class_mapping(corpus: Corpus) -> None:
    ds = load_split(corpus.root, "train")
    for clip in ds.clips:
        folder = clip.path.parent.name
        if folder == "_background_noise_":
            assert clip.label == SILENCE_LABEL
        elif folder in KEYWORDS:
            assert clip.label == KEYWORDS.index(folder)
        else:
            assert folder in ("bed", "marvin") and clip.label == UNKNOWN_LABEL
    counts = class_counts(ds)
    assert list(counts) == list(CLASSES)
    # 2 training speakers per word, plus the extra yes/no/up clips; 'bed' of train[1] is listed
    assert counts["yes"] == counts["no"] == counts["up"] == 3
    assert counts["down"] == 2
    assert counts["_unknown_"] == 3
    assert counts["_silence_"] == round(23 / 10)


def test_lists_protocol_follows_the_list_files(corpus: Corpus) -> None:
    splits = {s: load_split(corpus.root, s) for s in ("train", "validation", "test")}
    val = {f"{w}/{corpus.val_speaker}_nohash_0.wav" for w in WORDS}
    test = {f"{w}/{corpus.test_speaker}_nohash_0.wav" for w in WORDS} | {corpus.listed_train_clip}
    assert word_rels(splits["validation"], corpus.root) == val
    assert word_rels(splits["test"], corpus.root) == test
    assert word_rels(splits["train"], corpus.root) == set(corpus.rels()) - val - test
    assert corpus.listed_train_clip not in word_rels(splits["train"], corpus.root)


def test_lists_fall_back_to_the_speaker_hash(corpus: Corpus) -> None:
    (corpus.root / "testing_list.txt").unlink()
    splits = {s: load_split(corpus.root, s) for s in ("train", "validation", "test")}
    names = {"train": "training", "validation": "validation", "test": "testing"}
    for split, ds in splits.items():
        expected = {r for r in corpus.rels() if which_set(r) == names[split]}
        assert word_rels(ds, corpus.root) == expected
    assert corpus.listed_train_clip in word_rels(splits["train"], corpus.root)


def test_superb_sets_aside_the_test_bucket(corpus: Corpus) -> None:
    train = word_rels(load_split(corpus.root, "train", "superb"), corpus.root)
    val = word_rels(load_split(corpus.root, "validation", "superb"), corpus.root)
    test = word_rels(load_split(corpus.root, "test", "superb"), corpus.root)
    assert val == {r for r in corpus.rels() if which_set(r) == "validation"}
    assert test == {r for r in corpus.rels() if which_set(r) == "testing"}
    assert train == {r for r in corpus.rels() if which_set(r) == "training"}
    assert not train & test and not val & test and corpus.listed_train_clip in train


def test_test_root_replaces_the_test_split(corpus: Corpus, official_test_set: Path) -> None:
    for protocol in ("superb", "lists"):
        ds = load_split(corpus.root, "test", protocol, test_root=official_test_set)
        assert len(ds) == 14  # 10 keywords + 1 unknown + 3 ready-made silence clips
        assert all(c.path.is_relative_to(official_test_set) for c in ds.clips)
        counts = class_counts(ds)
        assert counts["_unknown_"] == 1 and counts["_silence_"] == 3
        assert all(counts[w] == 1 for w in KEYWORDS)


def test_test_root_without_silence_folder_gets_cuts(
    corpus: Corpus, official_test_set: Path
) -> None:
    shutil.rmtree(official_test_set / "_silence_")
    ds = load_split(corpus.root, "test", "superb", test_root=official_test_set)
    cuts = silence(ds)
    assert len(cuts) == 1 and cuts[0].path.parent == corpus.root / "_background_noise_"


def test_everything_listed_as_test_gives_an_empty_train_split(corpus: Corpus) -> None:
    (corpus.root / "validation_list.txt").write_text("")
    (corpus.root / "testing_list.txt").write_text("\n".join(corpus.rels()) + "\n")
    shutil.rmtree(corpus.root / "_background_noise_")  # not needed: no split asks for cuts
    assert len(load_split(corpus.root, "train")) == 0
    assert len(load_split(corpus.root, "validation")) == 0
    with pytest.raises(DataError, match="_background_noise_"):
        load_split(corpus.root, "test")
    test = load_split(corpus.root, "test", silence_per_split=0)
    assert word_rels(test, corpus.root) == set(corpus.rels())


def test_silence_cuts_are_deterministic_disjoint_and_counted(corpus: Corpus) -> None:
    cuts = {s: silence(load_split(corpus.root, s, silence_per_split=7)) for s in ("train", "test")}
    cuts["validation"] = silence(load_split(corpus.root, "validation", silence_per_split=7))
    assert all(len(c) == 7 for c in cuts.values())
    assert silence(load_split(corpus.root, "train", silence_per_split=7)) == cuts["train"]
    intervals = {
        split: {(c.path.name, c.offset, c.offset + CLIP_SAMPLES) for c in clips}
        for split, clips in cuts.items()
    }
    splits = list(intervals)
    for i, a in enumerate(splits):
        for b in splits[i + 1 :]:
            for name, lo, hi in intervals[a]:
                for name2, lo2, hi2 in intervals[b]:
                    assert name != name2 or hi <= lo2 or hi2 <= lo, (a, b, name)
    # validation/test regions of the 3 s file are shorter than 1 s: never cut there
    assert all(c.path.name != "short.wav" for c in cuts["validation"] + cuts["test"])
    assert {c.path.name for c in cuts["train"]} == set(NOISE_SECONDS)


def test_silence_audio_is_the_noise_slice(corpus: Corpus) -> None:
    ds = load_split(corpus.root, "validation")
    (cut,) = silence(ds)
    x, label = ds[ds.clips.index(cut)]
    noise = read_wav(cut.path)
    np.testing.assert_array_equal(x.numpy(), noise[cut.offset : cut.offset + CLIP_SAMPLES])
    assert label == SILENCE_LABEL
    assert 0.8 * len(noise) <= cut.offset <= 0.9 * len(noise) - CLIP_SAMPLES


def test_default_silence_count_is_the_keyword_mean(corpus: Corpus) -> None:
    assert len(silence(load_split(corpus.root, "train"))) == 2  # 23 keyword clips / 10
    assert len(silence(load_split(corpus.root, "validation"))) == 1
    for speaker in ("e0000001", "e0000002"):  # 6 more keyword clips: 16 in validation
        for word in KEYWORDS[:3]:
            write(corpus.root / word / f"{speaker}_nohash_0.wav", tone(100))
    val_list = corpus.root / "validation_list.txt"
    extra = [p.relative_to(corpus.root).as_posix() for p in corpus.root.glob("*/e000000*.wav")]
    val_list.write_text(val_list.read_text() + "\n".join(extra) + "\n")
    assert len(silence(load_split(corpus.root, "validation"))) == round(16 / 10)


def test_items_are_one_second_float32(corpus: Corpus) -> None:
    ds = load_split(corpus.root, "train")
    for i in range(len(ds)):
        x, label = ds[i]
        assert x.dtype == torch.float32 and x.shape == (CLIP_SAMPLES,)
        assert isinstance(label, int) and 0 <= label < len(CLASSES)


def test_padding_cropping_and_resampling(corpus: Corpus) -> None:
    ds = load_split(corpus.root, "train")
    by_rel = {c.path.relative_to(corpus.root).as_posix(): i for i, c in enumerate(ds.clips)}
    short = ds[by_rel[corpus.short_clip]][0].numpy()
    assert np.abs(short[:8000]).max() > 0.4 and not short[8000:].any()
    long = ds[by_rel[corpus.long_clip]][0].numpy()
    np.testing.assert_allclose(long, tone(310, 1.5)[:CLIP_SAMPLES], atol=1e-4)
    stereo = ds[by_rel[corpus.stereo_8k_clip]][0].numpy()
    core = slice(200, CLIP_SAMPLES - 200)  # away from the resampling filter's edges
    np.testing.assert_allclose(stereo[core], tone(440)[core], atol=0.02)


def test_with_transform_shares_the_cache_and_keeps_it_clean(corpus: Corpus) -> None:
    ds = load_split(corpus.root, "train")
    before = ds[0][0].clone()

    def zero_in_place(x: np.ndarray) -> np.ndarray:
        x[:] = 0
        return x

    view = ds.with_transform(zero_in_place)
    assert view.clips == ds.clips and view._cache is ds._cache
    assert not view[0][0].any()
    torch.testing.assert_close(ds[0][0], before)
    (corpus.root / ds.clips[0].path.relative_to(corpus.root)).unlink()
    torch.testing.assert_close(view.with_transform(None)[0][0], before)  # served from cache


def test_subset_shares_the_cache(corpus: Corpus) -> None:
    ds = load_split(corpus.root, "train").preload()
    sub = ds.subset([2, 0])
    assert sub.clips == [ds.clips[2], ds.clips[0]] and sub._cache is ds._cache


@pytest.mark.parametrize("content", [b"RIFF\x00\x00garbage bytes", b""])
def test_bad_wav_is_named(corpus: Corpus, content: bytes) -> None:
    bad = corpus.root / "left" / f"{corpus.train_speakers[0]}_nohash_0.wav"
    bad.write_bytes(content)
    with pytest.raises(DataError, match=str(bad)):
        load_split(corpus.root, "train", check=True)
    ds = load_split(corpus.root, "train")  # lazy: fails on read, still naming the file
    with pytest.raises(DataError, match=str(bad)):
        ds[[c.path for c in ds.clips].index(bad)]


def test_zero_length_wav_is_named(corpus: Corpus) -> None:
    bad = corpus.root / "go" / f"{corpus.val_speaker}_nohash_0.wav"
    sf.write(str(bad), np.zeros(0, dtype=np.float32), 16000, subtype="PCM_16")
    with pytest.raises(DataError, match=f"{bad}.*empty"):
        load_split(corpus.root, "validation", check=True)


def test_folder_errors(tmp_path: Path, corpus: Corpus) -> None:
    with pytest.raises(DataError, match="no such folder"):
        load_split(tmp_path / "missing", "train")
    (tmp_path / "empty" / "_background_noise_").mkdir(parents=True)
    with pytest.raises(DataError, match="not a Speech Commands folder"):
        load_split(tmp_path / "empty", "train")
    with pytest.raises(DataError, match="unknown split 'dev'"):
        load_split(corpus.root, "dev")
    with pytest.raises(DataError, match="unknown protocol 'kaggle'"):
        load_split(corpus.root, "train", "kaggle")
    with pytest.raises(DataError, match="no such folder"):
        load_split(corpus.root, "test", test_root=tmp_path / "nope")


def test_missing_keyword_in_train_is_named(corpus: Corpus) -> None:
    shutil.rmtree(corpus.root / "stop")
    with pytest.raises(DataError, match="'stop'"):
        load_split(corpus.root, "train")
    assert len(load_split(corpus.root, "validation")) == 11 + 1  # other splits still load


def test_missing_background_noise_is_named(corpus: Corpus) -> None:
    shutil.rmtree(corpus.root / "_background_noise_")
    with pytest.raises(DataError, match="_background_noise_"):
        load_split(corpus.root, "train")
    assert not silence(load_split(corpus.root, "train", silence_per_split=0))


def test_short_background_noise_is_reported(corpus: Corpus) -> None:
    for name in ("hum.wav", "white_noise.wav"):
        (corpus.root / "_background_noise_" / name).unlink()
    assert len(silence(load_split(corpus.root, "train"))) == 2  # 2.4 s train region is enough
    with pytest.raises(DataError, match="too short for validation"):
        load_split(corpus.root, "validation")


def test_background_noises(corpus: Corpus) -> None:
    full = background_noises(corpus.root, split=None)
    train = background_noises(corpus.root)
    assert sorted(len(x) for x in full) == sorted(int(s * 16000) for s in NOISE_SECONDS.values())
    for x, t in zip(full, train, strict=True):
        assert len(t) == int(0.8 * len(x)) and t.dtype == np.float32
        np.testing.assert_array_equal(t, x[: len(t)])


def test_balanced_sampler_is_balanced_and_seeded(corpus: Corpus) -> None:
    ds = load_split(corpus.root, "train", silence_per_split=1)
    labels = ds.labels
    draws = list(balanced_sampler(ds, num_samples=12000, seed=3))
    counts = Counter(labels[i] for i in draws)
    assert set(counts) == set(range(len(CLASSES)))
    assert max(counts.values()) < 1.15 * 1000 and min(counts.values()) > 0.85 * 1000
    assert draws == list(balanced_sampler(ds, num_samples=12000, seed=3))
    assert draws != list(balanced_sampler(ds, num_samples=12000, seed=4))
    assert len(list(balanced_sampler(ds))) == len(ds)
    with pytest.raises(DataError, match="empty"):
        balanced_sampler(KSDataset([]))
