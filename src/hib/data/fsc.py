"""Fluent Speech Commands folders as intent-classification datasets (SUPERB's IC task).

Layout: `<root>/data/{train,valid,test}_data.csv`, header `,path,speakerId,transcription,
action,object,location` (the first column is an unnamed row index), and the audio under
`<root>/wavs/speakers/<speakerId>/`, each csv path relative to `<root>`. An item is (16 kHz
mono float32 waveform, LongTensor of the 3 slot indices). The slot vocabularies are the FSC
inventory fixed here, so every split and every corpus (real or synthesized) shares one
mapping; a value outside it is an error, not a new class.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import torch

from hib.data.utterances import Utterance, UtteranceDataset, header_seconds, pad_waves
from hib.errors import DataError

SLOTS = ("action", "object", "location")
ACTIONS = ("activate", "bring", "change language", "deactivate", "decrease", "increase")
# fmt: off
OBJECTS = (
    "none", "music", "lights", "volume", "heat", "lamp", "newspaper", "juice", "socks", "shoes",
    "Chinese", "Korean", "English", "German",
)
# fmt: on
LOCATIONS = ("none", "kitchen", "bedroom", "washroom")
VOCABULARY = dict(zip(SLOTS, (ACTIONS, OBJECTS, LOCATIONS), strict=True))
"""Slot -> its values; a label is the index of its value here."""

INTENTS = (
    ("change language", "none", "none"),
    *(("change language", lang, "none") for lang in ("Chinese", "Korean", "English", "German")),
    *((act, thing, "none") for act in ("activate", "deactivate") for thing in ("music", "lamp")),
    *((act, "lights", loc) for act in ("activate", "deactivate") for loc in LOCATIONS),
    *((act, "volume", "none") for act in ("increase", "decrease")),
    *((act, "heat", loc) for act in ("increase", "decrease") for loc in LOCATIONS),
    *(("bring", thing, "none") for thing in ("newspaper", "juice", "socks", "shoes")),
)
"""The 31 (action, object, location) combinations that occur in Fluent Speech Commands."""

SPLIT_FILES = {"train": "train_data.csv", "validation": "valid_data.csv", "test": "test_data.csv"}
COLUMNS = ("path", "speakerId", "transcription", *SLOTS)
CSV_DIR = "data"


class ICDataset(UtteranceDataset):
    """Utterances as (float32 1-D tensor at 16 kHz, LongTensor (3,) of slot indices)."""

    slots = {name: list(values) for name, values in VOCABULARY.items()}
    """Slot name -> its values, in label order."""

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.wave(i), torch.tensor(self.utterances[i].labels, dtype=torch.long)

    @property
    def labels(self) -> torch.Tensor:
        """(N, 3) slot indices, in SLOTS order."""
        return torch.tensor([u.labels for u in self.utterances], dtype=torch.long).view(-1, 3)


def collate_ic(
    batch: Sequence[tuple[torch.Tensor, torch.Tensor]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(waves (B, N) zero-padded at the end, lengths (B,) in samples, labels (B, 3))."""
    waves, lengths = pad_waves([wave for wave, _ in batch])
    return waves, lengths, torch.stack([labels for _, labels in batch]).view(-1, 3)


def encode(intent: Sequence[str]) -> tuple[int, ...]:
    """(action, object, location) values -> their label indices (ValueError if unknown)."""
    return tuple(VOCABULARY[slot].index(value) for slot, value in zip(SLOTS, intent, strict=True))


def load_fsc(root: str | Path, split: str) -> ICDataset:
    """Every row of the split's csv, in file order, each checked against its audio file."""
    if split not in SPLIT_FILES:
        raise DataError(f"unknown split {split!r} (Fluent Speech Commands has {list(SPLIT_FILES)})")
    root = Path(root).expanduser()
    table = root / CSV_DIR / SPLIT_FILES[split]
    if not table.is_file():
        raise DataError(
            f"{table}: no such file (a Fluent Speech Commands folder has "
            f"{CSV_DIR}/{{{','.join(f.split('_')[0] for f in SPLIT_FILES.values())}}}_data.csv)"
        )
    try:
        with open(table, encoding="utf-8", newline="") as f:
            utterances = _rows(table, root, csv.reader(f))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{table}: not a readable csv ({str(exc).splitlines()[0]})") from None
    if not utterances:
        raise DataError(f"{table}: holds no utterances")
    return ICDataset(utterances)


def _rows(table: Path, root: Path, reader) -> list[Utterance]:
    header = next(reader, [])
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise DataError(f"{table}: no column {missing[0]!r} (header: {','.join(header)})")
    where = {c: header.index(c) for c in COLUMNS}
    out = []
    for row in reader:
        if not row:
            continue
        line = f"{table}: line {reader.line_num}"
        if len(row) != len(header):
            raise DataError(f"{line}: {len(row)} fields, the header has {len(header)}")
        value = {c: row[i] for c, i in where.items()}
        for slot in SLOTS:
            if value[slot] not in VOCABULARY[slot]:
                known = ", ".join(VOCABULARY[slot])
                raise DataError(f"{line}: unknown {slot} {value[slot]!r} (FSC has: {known})")
        path = root / value["path"]
        if not path.is_file():
            raise DataError(f"{line}: {path}: no such audio file")
        try:
            seconds = header_seconds(path)
        except DataError as exc:
            raise DataError(f"{line}: {exc}") from None
        labels = encode([value[s] for s in SLOTS])
        out.append(
            Utterance(value["path"], path, value["transcription"], value["speakerId"], seconds, labels)
        )
    return out
