"""A tiny Speech Commands corpus in the real layout, written fresh into tmp_path per test."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hib.data.protocols import which_set
from hib.data.speech_commands import KEYWORDS

SR = 16000
UNKNOWN_WORDS = ("bed", "marvin")
WORDS = (*KEYWORDS, *UNKNOWN_WORDS)
NOISE_SECONDS = {"white_noise.wav": 12.0, "hum.wav": 11.0, "short.wav": 3.0}


def speakers_in(bucket: str, n: int) -> list[str]:
    """The first n hex speaker ids (like 0a7c2a8d) that the official hash puts in `bucket`."""
    found, i = [], 0
    while len(found) < n:
        name = hashlib.md5(str(i).encode()).hexdigest()[:8]
        if which_set(f"{name}_nohash_0.wav") == bucket:
            found.append(name)
        i += 1
    return found


def tone(freq: float, seconds: float = 1.0, sr: int = SR) -> np.ndarray:
    t = np.arange(int(round(seconds * sr))) / sr
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write(path: Path, x: np.ndarray, sr: int = SR) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, subtype="PCM_16")
    return path


@dataclass
class Corpus:
    root: Path
    val_speaker: str  # hash bucket "validation", listed in validation_list.txt
    test_speaker: str  # hash bucket "testing", listed in testing_list.txt
    train_speakers: list[str]  # hash bucket "training"
    listed_train_clip: str  # a training-bucket clip that testing_list.txt nevertheless lists
    short_clip: str  # 0.5 s, to be padded
    long_clip: str  # 1.5 s, to be cropped
    stereo_8k_clip: str  # 8 kHz stereo, to be resampled and averaged

    def rels(self) -> list[str]:
        return sorted(
            f"{d.name}/{f.name}"
            for d in self.root.iterdir()
            if d.is_dir() and not d.name.startswith("_")
            for f in d.glob("*.wav")
        )


def make_corpus(root: Path) -> Corpus:
    (val,) = speakers_in("validation", 1)
    (test,) = speakers_in("testing", 1)
    train = speakers_in("training", 2)
    speakers = [val, test, *train]
    for w, word in enumerate(WORDS):
        for s, speaker in enumerate(speakers):
            write(root / word / f"{speaker}_nohash_0.wav", tone(200 + 40 * w + 7 * s))
    short_clip = f"yes/{train[0]}_nohash_1.wav"
    long_clip = f"no/{train[0]}_nohash_1.wav"
    stereo = f"up/{train[0]}_nohash_1.wav"
    write(root / short_clip, tone(300, 0.5))
    write(root / long_clip, tone(310, 1.5))
    mono8k = tone(440, 1.0, sr=8000)
    write(root / stereo, np.stack([mono8k, mono8k], axis=1), sr=8000)
    rng = np.random.default_rng(0)
    for name, seconds in NOISE_SECONDS.items():
        noise = 0.3 * rng.standard_normal(int(seconds * SR)).astype(np.float32)
        write(root / "_background_noise_" / name, np.clip(noise, -1, 1))
    listed_train_clip = f"bed/{train[1]}_nohash_0.wav"
    (root / "validation_list.txt").write_text(
        "".join(f"{word}/{val}_nohash_0.wav\n" for word in WORDS)
    )
    (root / "testing_list.txt").write_text(
        "".join(f"{word}/{test}_nohash_0.wav\n" for word in WORDS) + listed_train_clip + "\n"
    )
    (root / "README.md").write_text("fixture\n")
    return Corpus(root, val, test, train, listed_train_clip, short_clip, long_clip, stereo)


@pytest.fixture(scope="session")
def corpus_template(tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    return make_corpus(tmp_path_factory.mktemp("template") / "speech_commands_v0.01")


@pytest.fixture
def corpus(corpus_template: Corpus, tmp_path: Path) -> Corpus:
    """A private copy, so a test may damage its corpus (copying beats re-synthesizing)."""
    root = shutil.copytree(corpus_template.root, tmp_path / corpus_template.root.name)
    return replace(corpus_template, root=root)


@pytest.fixture
def official_test_set(tmp_path: Path) -> Path:
    return make_official_test_set(tmp_path / "speech_commands_test_set_v0.01")


def make_official_test_set(root: Path) -> Path:
    """The layout of speech_commands_test_set_v0.01: keyword folders plus _unknown_, _silence_."""
    for i, word in enumerate((*KEYWORDS, "_unknown_")):
        write(root / word / f"{i:08x}_nohash_0.wav", tone(500 + 10 * i))
    for i in range(3):
        write(root / "_silence_" / f"{i:08x}_nohash_0.wav", np.zeros(SR, dtype=np.float32))
    return root
