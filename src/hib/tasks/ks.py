"""Keyword spotting: 12-class Speech Commands (SUPERB KS), 1 s clips, accuracy.

Splits come from a Speech Commands-layout folder (the synthesized corpus by default); training
batches draw every class equally often and mix in the corpus's background noise
(`data.augment`), seeded by (seed, epoch) so a resumed run draws the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

from hib.data.augment import Augment
from hib.data.speech_commands import (
    CLASSES,
    KSDataset,
    background_noises,
    balanced_sampler,
    load_split,
)
from hib.device import pinned
from hib.distributed import LOCAL, World
from hib.downstream import ACCURACY, UtteranceClassifier
from hib.tasks.base import Batch, Splits, Task, register_task


@register_task
class KeywordSpotting(Task):
    name = "ks"
    metric = ACCURACY
    augments_training = True  # class-balanced draws with noise, new every epoch

    def load_splits(self, progress: bool = True) -> Splits:
        data = self.config.data
        root = self.root(progress)
        test_root = Path(data.test_root) if data.test_root else None
        train, validation, test = (
            load_split(root, s, data.protocol, test_root=test_root)
            for s in ("train", "validation", "test")
        )
        return self.limited(train, validation, test, root)

    def read_split(self, root: Path, split: str) -> KSDataset:
        return load_split(root, split, self.config.data.protocol)

    def split_names(self) -> tuple[str, ...]:
        return ("train", "validation", "test")

    def build_model(self) -> UtteranceClassifier:
        return UtteranceClassifier.from_config(self.config, CLASSES)

    @cached_property
    def noises(self) -> list:
        """Background noises for training-time augmentation (none when it is off); read once."""
        if not self.config.data.augment:
            return []
        return background_noises(self.root(progress=False))

    def train_batches(
        self,
        train_set: KSDataset,
        model: UtteranceClassifier,
        epoch: int,
        clips: int | None = None,
        world: World = LOCAL,
    ) -> Iterator[Batch]:
        """Class-balanced draws, augmented: `clips` of them, else train.steps_per_epoch
        batches, else one pass's worth (`world`'s part of each batch, its augmentation drawn
        from a seed of its own: hib.distributed); on the model's device, through pinned memory
        when that is a GPU."""
        config = self.config
        seed = config.seed * 1000 + epoch
        dataset = train_set
        if config.data.augment and self.noises:
            dataset = train_set.with_transform(
                Augment(self.noises, snr_db=config.data.snr_db, seed=world.seed(seed))
            )
        batch_size = config.train.batch_size
        if clips is not None:
            num_samples = -(-clips // batch_size) * batch_size
        elif config.train.steps_per_epoch:
            num_samples = config.train.steps_per_epoch * batch_size
        else:
            num_samples = len(train_set)
        draws = balanced_sampler(train_set, num_samples=num_samples, seed=seed)
        batches = world.batches(dataset, list(draws), batch_size, model.collate)
        device, pin = model.device, pinned(model.device)
        return ((batch.pin_memory() if pin else batch).to(device) for batch in batches)
