"""What the utterance-level readers share: audio read on first use, cached, and padded batches.

LibriSpeech, VoxCeleb1 (and any reader of variable-length files) list utterances from their
index files without decoding audio; a dataset reads each file once, and its subsets share that
cache, so a split can be cut into fitting and evaluation parts without reading twice.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol, Self

import numpy as np
import torch
from torch.utils.data import Dataset

from hib.data.audio import read_wav


class Listed(Protocol):
    """One listed utterance: where its audio is, whose it is, how long (from the header)."""

    id: str
    path: Path
    speaker: str
    seconds: float


class UtteranceDataset(Dataset):
    """Listed utterances whose 16 kHz mono audio is read (and checked) on first use."""

    def __init__(self, utterances: Sequence[Listed], *, cache: dict[Path, np.ndarray] | None = None):
        self.utterances = list(utterances)
        self._cache: dict[Path, np.ndarray] = {} if cache is None else cache

    def __len__(self) -> int:
        return len(self.utterances)

    def audio(self, utt: Listed) -> np.ndarray:
        signal = self._cache.get(utt.path)
        if signal is None:
            signal = self._cache[utt.path] = read_wav(utt.path)
        return signal

    @property
    def ids(self) -> list[str]:
        return [u.id for u in self.utterances]

    @property
    def speakers(self) -> list[str]:
        return [u.speaker for u in self.utterances]

    @property
    def durations(self) -> list[float]:
        """Seconds per utterance, from the file headers (no audio decoded)."""
        return [u.seconds for u in self.utterances]

    def subset(self, indices: Iterable[int]) -> Self:
        """Some of the utterances (every other attribute kept), sharing the audio cache."""
        part = copy.copy(self)
        part.utterances = [self.utterances[i] for i in indices]
        return part

    def preload(self) -> Self:
        """Read every file now, so a bad one fails here (naming it), not mid-evaluation."""
        for utt in self.utterances:
            self.audio(utt)
        return self


def pad_waves(waves: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, N) zero-padded at the end, and the lengths (B,) in samples."""
    lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
    out = torch.zeros(len(waves), int(lengths.max()) if len(waves) else 0)
    for row, wave in enumerate(waves):
        out[row, : len(wave)] = wave
    return out, lengths
