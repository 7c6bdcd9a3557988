"""VoxCeleb1 identification folders as SID datasets: (16 kHz mono waveform, speaker label).

Layout: `<root>/wav/<speaker id>/<video id>/<nnnnn>.wav` and `<root>/iden_split.txt`, one
`<code> <speaker>/<video>/<nnnnn>.wav` line per utterance with code 1 (train), 2 (validation)
or 3 (test). Every speaker is in every split (SUPERB's protocol), so the labels of every split
index one list, `classes`: the sorted speaker ids of the whole split file. Audio at any rate or
channel count is converted on reading; every inconsistency is a one-line DataError naming the
file (and line).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import torch

from hib.data.utterances import Utterance, UtteranceDataset, header_seconds, pad_waves
from hib.errors import DataError

LIST_FILE = "iden_split.txt"
AUDIO_DIR = "wav"
SPLIT_CODES = {"train": "1", "validation": "2", "test": "3"}


class SIDDataset(UtteranceDataset):
    """Utterances as (float32 1-D tensor at 16 kHz, index of the speaker in `classes`).

    An utterance's id is its `<speaker>/<video>/<nnnnn>.wav` line; its one label is the index.
    """

    def __init__(self, utterances: Sequence[Utterance], classes: Sequence[str], **kwargs):
        super().__init__(utterances, **kwargs)
        self.classes = list(classes)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.wave(i), self.utterances[i].labels[0]

    @property
    def labels(self) -> list[int]:
        return [u.labels[0] for u in self.utterances]

    @property
    def videos(self) -> list[str]:
        return [u.id.split("/")[1] for u in self.utterances]


def collate_sid(
    batch: Sequence[tuple[torch.Tensor, int]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(waves (B, N) zero-padded at the end, lengths (B,) in samples, labels (B,))."""
    waves, lengths = pad_waves([wave for wave, _ in batch])
    return waves, lengths, torch.tensor([label for _, label in batch], dtype=torch.long)


def load_voxceleb1(root: str | Path, split: str) -> SIDDataset:
    """The utterances `iden_split.txt` assigns to `split` (train, validation or test), in its order."""
    root = Path(root).expanduser()
    listing = root / LIST_FILE
    if split not in SPLIT_CODES:
        raise DataError(f"{listing}: no split {split!r} (splits: {', '.join(SPLIT_CODES)})")
    if not listing.is_file():
        raise DataError(f"{listing}: missing (VoxCeleb1 lists its identification split there)")
    entries = _read_list(listing)
    classes = sorted({rel.parts[0] for _, _, rel in entries})
    label = {speaker: i for i, speaker in enumerate(classes)}
    utterances = []
    for number, code, rel in entries:
        if code != SPLIT_CODES[split]:
            continue
        path = root / AUDIO_DIR / rel
        if not path.is_file():
            raise DataError(f"{listing}:{number}: {path} is missing")
        speaker = rel.parts[0]
        seconds = header_seconds(path)
        utterances.append(Utterance(str(rel), path, "", speaker, seconds, (label[speaker],)))
    if not utterances:
        raise DataError(f"{listing}: lists no {split} utterance (code {SPLIT_CODES[split]})")
    return SIDDataset(utterances, classes)


def _read_list(listing: Path) -> list[tuple[int, str, PurePosixPath]]:
    """(line number, split code, relative path) per line; any malformed line is an error."""
    entries, seen = [], set()
    for number, line in enumerate(listing.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        fields = line.split()
        rel = PurePosixPath(fields[-1]) if len(fields) == 2 else None
        if (
            rel is None
            or fields[0] not in SPLIT_CODES.values()
            or len(rel.parts) != 3
            or rel.is_absolute()
            or rel.suffix != ".wav"
            or {"..", "."} & set(rel.parts)
        ):
            raise DataError(
                f"{listing}:{number}: expected '<1|2|3> <speaker>/<video>/<n>.wav', got {line!r}"
            )
        if rel in seen:
            raise DataError(f"{listing}:{number}: {rel} is listed twice")
        seen.add(rel)
        entries.append((number, fields[0], rel))
    return entries
