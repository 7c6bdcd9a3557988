"""LibriSpeech-layout folders as ASR datasets: (16 kHz mono waveform, transcript) pairs.

Layout: `<root>/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac` (or .wav) beside
`<speaker>-<chapter>.trans.txt`, one `<utterance id> <TRANSCRIPT>` line per utterance. Any
folder name is a split (test-clean, dev-other, or a user's test-real). Audio at any rate or
channel count is converted on reading; every inconsistency is a one-line DataError naming
the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

from hib.data.audio import read_wav
from hib.errors import DataError

AUDIO_SUFFIXES = (".flac", ".wav")
TRANSCRIPT_SUFFIX = ".trans.txt"


@dataclass(frozen=True)
class Utterance:
    id: str
    path: Path
    text: str
    speaker: str
    seconds: float


class ASRDataset(Dataset):
    """Utterances as (float32 1-D tensor at 16 kHz, transcript); audio is read on first use."""

    def __init__(
        self, utterances: Sequence[Utterance], *, cache: dict[Path, np.ndarray] | None = None
    ):
        self.utterances = list(utterances)
        self._cache: dict[Path, np.ndarray] = {} if cache is None else cache

    def __len__(self) -> int:
        return len(self.utterances)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        utt = self.utterances[i]
        return torch.from_numpy(self.audio(utt)), utt.text

    def audio(self, utt: Utterance) -> np.ndarray:
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
    def texts(self) -> list[str]:
        return [u.text for u in self.utterances]

    @property
    def durations(self) -> list[float]:
        """Seconds per utterance, from the file headers (no audio decoded)."""
        return [u.seconds for u in self.utterances]

    def subset(self, indices: Iterable[int]) -> ASRDataset:
        """Some of the utterances, sharing the audio cache."""
        return ASRDataset([self.utterances[i] for i in indices], cache=self._cache)

    def preload(self) -> ASRDataset:
        """Read every file now, so a bad one fails here (naming it), not mid-evaluation."""
        for utt in self.utterances:
            self.audio(utt)
        return self


def collate_asr(
    batch: Sequence[tuple[torch.Tensor, str]],
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(waves (B, N) zero-padded at the end, lengths (B,) in samples, texts)."""
    lengths = torch.tensor([len(w) for w, _ in batch], dtype=torch.long)
    waves = torch.zeros(len(batch), int(lengths.max()) if len(batch) else 0)
    for row, (wave, _) in enumerate(batch):
        waves[row, : len(wave)] = wave
    return waves, lengths, [text for _, text in batch]


def load_librispeech(root: str | Path, split: str) -> ASRDataset:
    """Every utterance of `<root>/<split>`, sorted by id."""
    folder = Path(root).expanduser() / split
    if not folder.is_dir():
        found = sorted(p.name for p in Path(root).expanduser().glob("*") if p.is_dir())
        raise DataError(f"{folder}: no such split folder (found: {', '.join(found) or 'none'})")
    utterances: list[Utterance] = []
    for transcript in sorted(folder.glob(f"*/*/*{TRANSCRIPT_SUFFIX}")):
        utterances.extend(_chapter(transcript))
    _require_transcripts(folder, {u.path for u in utterances})
    if not utterances:
        raise DataError(
            f"{folder}: holds no utterances (expected <speaker>/<chapter>/"
            f"<speaker>-<chapter>{TRANSCRIPT_SUFFIX} beside the audio files)"
        )
    return ASRDataset(sorted(utterances, key=lambda u: u.id))


def _chapter(transcript: Path) -> list[Utterance]:
    """The utterances one transcript file lists, each checked against its audio file."""
    chapter = transcript.parent
    speaker = chapter.parent.name
    out = []
    for number, line in enumerate(transcript.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        utt_id, _, text = line.strip().partition(" ")
        where = f"{transcript}:{number}"
        if not text.strip():
            raise DataError(f"{where}: {utt_id} has no transcript text")
        paths = [chapter / f"{utt_id}{s}" for s in AUDIO_SUFFIXES if (chapter / f"{utt_id}{s}").exists()]
        if not paths:
            raise DataError(f"{where}: {utt_id} has no audio file ({' or '.join(AUDIO_SUFFIXES)})")
        if len(paths) > 1:
            raise DataError(f"{where}: {utt_id} has both {paths[0].name} and {paths[1].name}")
        out.append(Utterance(utt_id, paths[0], text.strip(), speaker, _seconds(paths[0])))
    return out


def _seconds(path: Path) -> float:
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises several types; all mean "cannot read"
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: unreadable audio ({reason})") from None
    if info.frames == 0:
        raise DataError(f"{path}: empty audio (0 samples)")
    return info.frames / info.samplerate


def _require_transcripts(folder: Path, listed: set[Path]) -> None:
    """Every audio file is some transcript line's; an orphan is named with where it belongs."""
    for suffix in AUDIO_SUFFIXES:
        for path in sorted(folder.glob(f"*/*/*{suffix}")):
            if path not in listed:
                expected = "-".join(path.stem.split("-")[:2]) + TRANSCRIPT_SUFFIX
                raise DataError(f"{path}: no transcript line for it in {expected}")
