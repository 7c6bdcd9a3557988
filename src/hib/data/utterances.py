"""What the utterance-level readers (LibriSpeech, Fluent Speech Commands, VoxCeleb1) share.

An utterance is a file of any length with its speaker, transcript and task labels; a dataset
lists them and reads the audio on first use (16 kHz mono float32, converted by `read_wav`).
Lengths come from the file headers, so listing a corpus decodes no audio.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

from hib.data.audio import read_wav
from hib.errors import DataError


@dataclass(frozen=True)
class Utterance:
    id: str
    path: Path
    text: str
    speaker: str
    seconds: float
    labels: tuple[int, ...] = ()
    """Class indices where the task has them (intent classification: one per slot)."""


class UtteranceDataset(Dataset):
    """Utterances whose audio is read on first use; subclasses say what an item is."""

    def __init__(
        self, utterances: Sequence[Utterance], *, cache: dict[Path, np.ndarray] | None = None
    ):
        self.utterances = list(utterances)
        self._cache: dict[Path, np.ndarray] = {} if cache is None else cache

    def __len__(self) -> int:
        return len(self.utterances)

    def audio(self, utt: Utterance) -> np.ndarray:
        signal = self._cache.get(utt.path)
        if signal is None:
            signal = self._cache[utt.path] = read_wav(utt.path)
        return signal

    def wave(self, i: int) -> torch.Tensor:
        """Utterance i as a float32 1-D tensor at 16 kHz."""
        return torch.from_numpy(self.audio(self.utterances[i]))

    @property
    def ids(self) -> list[str]:
        return [u.id for u in self.utterances]

    @property
    def speakers(self) -> list[str]:
        return [u.speaker for u in self.utterances]

    @property
    def texts(self) -> list[str]:
        return [u.text for u in self.utterances]

    @property
    def durations(self) -> list[float]:
        """Seconds per utterance, from the file headers (no audio decoded)."""
        return [u.seconds for u in self.utterances]

    def subset(self, indices: Iterable[int]) -> Self:
        """Some of the utterances (other attributes, such as SID's classes, kept), sharing the
        audio cache."""
        part = copy.copy(self)
        part.utterances = [self.utterances[i] for i in indices]
        return part

    def by_length(self) -> Self:
        """The utterances shortest first (stable), so batches in order pad little."""
        return self.subset(sorted(range(len(self)), key=lambda i: self.utterances[i].seconds))

    def preload(self) -> Self:
        """Read every file now, so a bad one fails here (naming it), not mid-evaluation."""
        for utt in self.utterances:
            self.audio(utt)
        return self


def header_seconds(path: Path) -> float:
    """The file's length from its header; DataError naming it when unreadable or empty."""
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises several types; all mean "cannot read"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: unreadable audio ({reason})") from None
    if info.frames == 0:
        raise DataError(f"{path}: empty audio (0 samples)")
    return info.frames / info.samplerate


def pad_waves(waves: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(waves (B, N) zero-padded at the end, lengths (B,) in samples)."""
    lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
    batch = torch.zeros(len(waves), int(lengths.max()) if len(waves) else 0)
    for row, wave in enumerate(waves):
        batch[row, : len(wave)] = wave
    return batch, lengths
