"""Speech Commands (v0.01 or v0.02 layout) as 12-class keyword-spotting splits.

The folder holds one sub-folder of 1 s WAVs per word, `_background_noise_/` with long noise
recordings, and `validation_list.txt` / `testing_list.txt`. Ten words are keywords, every other
word is `_unknown_`, and `_silence_` clips are deterministic 1 s cuts of the background noise.
The official test archive (speech_commands_test_set_v0.0x) has the same layout with ready-made
`_unknown_/` and `_silence_/` folders, so it loads through the same code.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, WeightedRandomSampler

from hib.data.audio import CLIP_SAMPLES, fit_length, read_wav
from hib.data.protocols import which_set
from hib.errors import DataError

KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN = "_unknown_"
SILENCE = "_silence_"
CLASSES = (*KEYWORDS, UNKNOWN, SILENCE)
UNKNOWN_LABEL = CLASSES.index(UNKNOWN)
SILENCE_LABEL = CLASSES.index(SILENCE)

SPLITS = ("train", "validation", "test")
PROTOCOLS = ("lists", "superb")
NOISE_DIR = "_background_noise_"
VALIDATION_LIST = "validation_list.txt"
TESTING_LIST = "testing_list.txt"

# Each noise file is cut into disjoint regions, one per split, so no silence clip of the test
# split shares a sample with training audio (nor with training-time augmentation noise).
_NOISE_REGIONS = {"train": (0.0, 0.8), "validation": (0.8, 0.9), "test": (0.9, 1.0)}
# which_set's names for the buckets of the speaker hash.
_HASH_SPLIT = {"training": "train", "validation": "validation", "testing": "test"}

Transform = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Clip:
    """One 1 s example: a word file (offset 0), or a cut of a noise file starting at `offset`."""

    path: Path
    label: int
    offset: int = 0

    @property
    def is_silence(self) -> bool:
        return self.label == SILENCE_LABEL


class KSDataset(Dataset):
    """Clips as (float32 tensor of CLIP_SAMPLES, label); audio is read once, then kept in memory.

    The cache maps a file to its whole 16 kHz signal, so the many silence cuts of one noise
    file share one array, and views made by `with_transform` share the cache too.
    """

    def __init__(
        self,
        clips: list[Clip],
        transform: Transform | None = None,
        *,
        cache: dict[Path, np.ndarray] | None = None,
    ) -> None:
        self.clips = list(clips)
        self.transform = transform
        self._cache: dict[Path, np.ndarray] = {} if cache is None else cache

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        clip = self.clips[i]
        x = self.audio(clip)
        if self.transform is not None:
            x = self.transform(x)
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), clip.label

    @property
    def labels(self) -> list[int]:
        return [c.label for c in self.clips]

    def audio(self, clip: Clip) -> np.ndarray:
        """A fresh copy of the clip's 1 s of audio (transforms may change it in place)."""
        signal = self._cache.get(clip.path)
        if signal is None:
            signal = self._cache[clip.path] = read_wav(clip.path)
        return fit_length(signal[clip.offset : clip.offset + CLIP_SAMPLES]).copy()

    def with_transform(self, transform: Transform | None) -> KSDataset:
        """Same clips and same cache, another transform (e.g. augmentation for training only)."""
        return KSDataset(self.clips, transform, cache=self._cache)

    def subset(self, indices: Iterable[int]) -> KSDataset:
        """Some of the clips, same transform and same cache (no file is read twice)."""
        return KSDataset([self.clips[i] for i in indices], self.transform, cache=self._cache)

    def preload(self) -> KSDataset:
        """Read every file now, so a bad WAV fails here (naming it) rather than mid-training."""
        for clip in self.clips:
            self.audio(clip)
        return self


def load_split(
    root: str | Path,
    split: str,
    protocol: str = "lists",
    silence_per_split: int | None = None,
    test_root: str | Path | None = None,
    check: bool = False,
) -> KSDataset:
    """One split of a Speech Commands folder as a 12-class dataset.

    protocol "lists" (the standard one): validation and test are the clips named in
    validation_list.txt and testing_list.txt, train is the rest. If either list file is
    missing, both are replaced by the speaker-hash rule that wrote them (`which_set`), so a
    corpus without lists still splits the official way.
    protocol "superb": the speaker hash, with validation < 10 % and train >= 20 %; the 10-20 %
    bucket is the test split only when no `test_root` is given, else it is left out.
    `test_root` (either protocol): a separate folder in the same layout, e.g. the unpacked
    official test archive; all its clips form the test split.
    Silence clips come from a `_silence_/` folder when the split has one, else
    `silence_per_split` cuts of the background noise (default: the mean number of clips per
    keyword in the split, at least 1, none for an empty split).
    `check=True` reads every file once now, so the first bad one is reported at load time.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: use one of {', '.join(SPLITS)}")
    if protocol not in PROTOCOLS:
        raise DataError(f"unknown protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")
    root = _corpus_folder(root)
    if split == "test" and test_root is not None:
        clips = _word_clips(_corpus_folder(test_root))
    else:
        split_of = _splitter(root, protocol)
        clips = [c for c, rel in _labelled_files(root) if split_of(rel) == split]
    if split == "train":
        _require_every_keyword(clips, root)
    cache: dict[Path, np.ndarray] = {}
    if not any(c.is_silence for c in clips):
        count = _silence_count(clips) if silence_per_split is None else silence_per_split
        clips += _silence_cuts(root, split, count, cache)
    dataset = KSDataset(clips, cache=cache)
    return dataset.preload() if check else dataset


def background_noises(root: str | Path, split: str | None = "train") -> list[np.ndarray]:
    """The background-noise recordings (16 kHz float32), for augmentation.

    By default only each file's train region, the part no silence clip of validation or test
    is cut from; `split=None` gives the whole files.
    """
    noises = _read_noises(_corpus_folder(root))
    if split is None:
        return [x for _, x in noises]
    return [x[slice(*_region(len(x), split))] for _, x in noises]


def balanced_sampler(
    dataset: KSDataset, num_samples: int | None = None, seed: int = 0
) -> WeightedRandomSampler:
    """Draws every class equally often in expectation; the same seed gives the same draws."""
    if len(dataset) == 0:
        raise DataError("cannot build a class-balanced sampler for an empty dataset")
    counts = Counter(dataset.labels)
    weights = torch.tensor([1.0 / counts[label] for label in dataset.labels], dtype=torch.double)
    generator = torch.Generator().manual_seed(seed)
    n = len(dataset) if num_samples is None else num_samples
    return WeightedRandomSampler(weights, n, replacement=True, generator=generator)


def class_counts(dataset: KSDataset) -> dict[str, int]:
    """Clips per class name, every class listed (zeros included), in CLASSES order."""
    counts = Counter(dataset.labels)
    return {name: counts[i] for i, name in enumerate(CLASSES)}


def _corpus_folder(root: str | Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder (expected a Speech Commands corpus)")
    if not _word_dirs(root):
        raise DataError(
            f"{root}: not a Speech Commands folder (no word folders of .wav files, like yes/)"
        )
    return root


def _word_dirs(root: Path) -> list[Path]:
    """Sub-folders holding WAVs, except `_background_noise_` and other `_`-folders we don't know.

    Requiring WAVs skips unrelated folders, e.g. the test archive unpacked inside the corpus.
    """
    return [
        d
        for d in sorted(root.iterdir())
        if d.is_dir()
        and (not d.name.startswith("_") or d.name in (UNKNOWN, SILENCE))
        and any(d.glob("*.wav"))
    ]


def _label(word: str) -> int:
    return CLASSES.index(word) if word in CLASSES else UNKNOWN_LABEL


def _labelled_files(root: Path) -> Iterable[tuple[Clip, str]]:
    """Every word clip with its path relative to root, as the list files spell it."""
    for d in _word_dirs(root):
        label = _label(d.name)
        for wav in sorted(d.glob("*.wav")):
            yield Clip(wav, label), f"{d.name}/{wav.name}"


def _word_clips(root: Path) -> list[Clip]:
    return [clip for clip, _ in _labelled_files(root)]


def _splitter(root: Path, protocol: str) -> Callable[[str], str]:
    """Maps a clip's path relative to root to its split."""
    lists = _read_lists(root) if protocol == "lists" else None
    if lists is None:
        return lambda rel: _HASH_SPLIT[which_set(rel)]
    validation, testing = lists
    return lambda rel: "validation" if rel in validation else "test" if rel in testing else "train"


def _read_lists(root: Path) -> tuple[frozenset[str], frozenset[str]] | None:
    """(validation, testing) relative paths, or None when a list file is missing."""
    files = (root / VALIDATION_LIST, root / TESTING_LIST)
    if not all(f.is_file() for f in files):
        return None
    validation, testing = (_read_list(root, f) for f in files)
    return validation, testing


def _read_list(root: Path, path: Path) -> frozenset[str]:
    """The clips a list file names (relative to root); each must exist if its word folder does.

    A missing folder means a corpus trimmed to fewer words (its clips are simply absent); a
    missing clip in a folder that exists means the list and the corpus disagree.
    """
    try:
        names = frozenset(line.strip() for line in path.read_text().splitlines() if line.strip())
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text list of clips") from None
    missing = sorted(n for n in names if (root / n).parent.is_dir() and not (root / n).is_file())
    if missing:
        raise DataError(f"{path}: names {len(missing)} missing clip(s), e.g. {missing[0]}")
    return names


def _silence_count(clips: list[Clip]) -> int:
    """The mean number of clips per keyword, at least 1; 0 for an empty split."""
    if not clips:
        return 0
    keyword_clips = sum(c.label < len(KEYWORDS) for c in clips)
    return max(1, round(keyword_clips / len(KEYWORDS)))


def _region(n: int, split: str) -> tuple[int, int]:
    """The [start, end) samples of a noise file of n samples that belong to `split`."""
    lo, hi = _NOISE_REGIONS[split]
    return int(n * lo), int(n * hi)


def _read_noises(root: Path) -> list[tuple[Path, np.ndarray]]:
    folder = root / NOISE_DIR
    files = sorted(folder.glob("*.wav")) if folder.is_dir() else []
    if not files:
        raise DataError(f"{folder}: no background-noise WAVs (needed for _silence_ clips)")
    return [(f, read_wav(f)) for f in files]


def _silence_cuts(root: Path, split: str, count: int, cache: dict[Path, np.ndarray]) -> list[Clip]:
    """`count` 1 s cuts from the split's region of the noise files, the same on every call.

    Cuts go round-robin over the files whose region holds at least 1 s, at offsets drawn from a
    generator seeded by the split name (a fixed CRC, not Python's salted hash).
    """
    if count <= 0:
        return []
    noises = _read_noises(root)
    cache.update(noises)
    regions = [(path, *_region(len(x), split)) for path, x in noises]
    usable = [(path, lo, hi) for path, lo, hi in regions if hi - lo >= CLIP_SAMPLES]
    if not usable:
        raise DataError(
            f"{root / NOISE_DIR}: background noise too short for {split} silence clips "
            "(need a file of at least 10 s)"
        )
    rng = np.random.default_rng(zlib.crc32(split.encode()))
    cuts = []
    for i in range(count):
        path, lo, hi = usable[i % len(usable)]
        offset = lo + int(rng.integers(0, hi - lo - CLIP_SAMPLES + 1))
        cuts.append(Clip(path, SILENCE_LABEL, offset))
    return cuts


def _require_every_keyword(clips: list[Clip], root: Path) -> None:
    """A non-empty train split without some keyword would train a classifier that can't say it."""
    if not clips:
        return
    present = {c.label for c in clips}
    for label, word in enumerate(KEYWORDS):
        if label not in present:
            raise DataError(f"{root}: no training clips of keyword {word!r} (folder {word}/)")
