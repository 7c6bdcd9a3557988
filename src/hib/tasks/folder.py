"""A classification task of your own: a folder of WAVs, one sub-folder per class.

    <root>/train/<label>/*.wav
    <root>/validation/<label>/*.wav      (folder names: data.splits, default as here)
    <root>/test/<label>/*.wav

    hib train task=folder data.root=/my/sounds --out runs/mine
    hib score runs/mine --method hib && hib prune runs/mine --method hib

This module is the example docs/tasks.md walks through: a task is a `Task` subclass (how to
read the splits, the model, the training batches) registered with `@register_task`, plus its
module's line in `hib.tasks.TASK_MODULES`. The model is SUPERB's utterance classifier, so the
loss (cross-entropy) and the metric (accuracy) come with it; training batches are the Task
default (a seeded shuffle per epoch).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from hib.data.audio import read_wav
from hib.downstream import ACCURACY, UtteranceClassifier
from hib.errors import DataError
from hib.tasks.base import Splits, Task, register_task

MAX_SECONDS = 30.0  # longer clips are cut: Whisper's window


class LabelledClips(Dataset):
    """(waveform at 16 kHz, class index) per file; audio is read on first use and kept."""

    def __init__(self, files: Sequence[tuple[Path, int]], classes: Sequence[str]):
        self.files, self.classes = list(files), tuple(classes)
        self._audio: dict[Path, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.files[i]
        if path not in self._audio:
            self._audio[path] = read_wav(path)[: int(MAX_SECONDS * 16000)]
        return torch.from_numpy(self._audio[path]), label

    def subset(self, indices: Sequence[int]) -> LabelledClips:
        return LabelledClips([self.files[i] for i in indices], self.classes)


def read_folder(root: Path, split: str, classes: Sequence[str] | None = None) -> LabelledClips:
    """Every WAV of `<root>/<split>/<label>/`; labels index `classes` (default: this split's
    sorted label folders)."""
    folder = Path(root).expanduser() / split
    if not folder.is_dir():
        raise DataError(f"{folder}: no such split folder")
    labels = sorted(p.name for p in folder.iterdir() if p.is_dir())
    classes = list(classes or labels)
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise DataError(f"{folder}: class folders {unknown} are not in the training split")
    files = [
        (p, classes.index(lab)) for lab in labels for p in sorted((folder / lab).glob("*.wav"))
    ]
    if not files:
        raise DataError(f"{folder}: no <label>/*.wav files")
    return LabelledClips(files, classes)


@register_task
class FolderClassification(Task):
    name = "folder"
    metric = ACCURACY

    def _folders(self) -> tuple[str, str, str]:
        return self.config.data.splits or ("train", "validation", "test")

    def root(self, progress: bool = True) -> Path:
        """data.root: a user's folder has no synthesized default."""
        if self.config.data.root is None:
            raise DataError("task folder needs data.root=<folder with train/validation/test>")
        return Path(self.config.data.root)

    @cached_property
    def classes(self) -> tuple[str, ...]:
        """The training split's label folders, sorted: every split's label indices."""
        return read_folder(self.root(), self._folders()[0]).classes

    def load_splits(self, progress: bool = True) -> Splits:
        root, (fit, val, test) = self.root(), self._folders()
        train, validation, test_set = (
            read_folder(root, split, self.classes) for split in (fit, val, test)
        )
        return self.limited(train, validation, test_set, root)

    def read_split(self, root: Path, split: str) -> LabelledClips:
        return read_folder(root, split, self.classes)

    def build_model(self) -> UtteranceClassifier:
        return UtteranceClassifier.from_config(self.config, self.classes)
