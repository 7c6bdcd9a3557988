"""LibriSpeech-layout folders as ASR datasets: (16 kHz mono waveform, transcript) pairs.

Layout: `<root>/<split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac` (or .wav) beside
`<speaker>-<chapter>.trans.txt`, one `<utterance id> <TRANSCRIPT>` line per utterance. Any
folder name is a split (test-clean, dev-other, or a user's test-real). Audio at any rate or
channel count is converted on reading; every inconsistency is a one-line DataError naming
the file.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from hib.data.utterances import Utterance, UtteranceDataset, header_seconds, pad_waves
from hib.errors import DataError

AUDIO_SUFFIXES = (".flac", ".wav")
TRANSCRIPT_SUFFIX = ".trans.txt"


class ASRDataset(UtteranceDataset):
    """Utterances as (float32 1-D tensor at 16 kHz, transcript); audio is read on first use."""

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        return self.wave(i), self.utterances[i].text


def collate_asr(
    batch: Sequence[tuple[torch.Tensor, str]],
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(waves (B, N) zero-padded at the end, lengths (B,) in samples, texts)."""
    waves, lengths = pad_waves([wave for wave, _ in batch])
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
        out.append(Utterance(utt_id, paths[0], text.strip(), speaker, header_seconds(paths[0])))
    return out


def _require_transcripts(folder: Path, listed: set[Path]) -> None:
    """Every audio file is some transcript line's; an orphan is named with where it belongs."""
    for suffix in AUDIO_SUFFIXES:
        for path in sorted(folder.glob(f"*/*/*{suffix}")):
            if path not in listed:
                expected = "-".join(path.stem.split("-")[:2]) + TRANSCRIPT_SUFFIX
                raise DataError(f"{path}: no transcript line for it in {expected}")
