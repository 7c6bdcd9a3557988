"""Speaker identification (SUPERB SID): which of the training speakers is talking; accuracy.

Splits come from a VoxCeleb1-layout folder (`wav/<speaker>/<video>/<n>.wav` + `iden_split.txt`;
the synthesized corpus of hib.data.synth.sid_corpus by default): every speaker is in every
split, with other utterances (and, in the synthesized corpus, other sessions) in each. The
model is SUPERB's utterance classifier over the speakers of the split file.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from hib.data.corpora import sid_corpus
from hib.data.voxceleb import SPLIT_CODES, SIDDataset, load_voxceleb1
from hib.downstream import ACCURACY, UtteranceClassifier
from hib.errors import DataError
from hib.tasks.base import Splits, Task, register_task


@register_task
class SpeakerIdentification(Task):
    name = "sid"
    metric = ACCURACY
    corpus = sid_corpus

    @cached_property
    def classes(self) -> list[str]:
        """Every speaker of the split file, sorted (the label order of every split)."""
        return load_voxceleb1(self.root(progress=False), "train").classes

    def load_splits(self, progress: bool = True) -> Splits:
        root = self.root(progress)
        train, validation, test = (load_voxceleb1(root, split).by_length() for split in SPLIT_CODES)
        return self.limited(train, validation, test, root)

    def read_split(self, root: Path, split: str) -> SIDDataset:
        dataset = load_voxceleb1(root, split)
        if dataset.classes != self.classes:
            raise DataError(f"{root}: not the run's speakers (a model knows only its own)")
        return dataset.by_length()

    def split_names(self) -> tuple[str, ...]:
        return tuple(SPLIT_CODES)

    def build_model(self) -> UtteranceClassifier:
        return UtteranceClassifier.from_config(self.config, self.classes)
