"""A frozen upstream's per-clip features, computed once, for training a head on them.

With the upstream frozen and training clips that are the same every epoch (no on-the-fly
augmentation: `Task.augments_training`), a head whose outputs depend on the hidden states only
through a per-clip summary (`TaskModel.supports_features`: SUPERB's utterance head, whose
pooling commutes with its linear layers) gets the same outputs from that summary as from a
forward. So the forward runs once per clip instead of once per clip and epoch: for SID's and
IC's thousands of utterances, minutes instead of an hour.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from hib.distributed import LOCAL, World
from hib.tasks.base import Batch, EvalResult, TaskModel


class ClipFeatures:
    """Every clip's features (N, ...) and targets (N, ...), in dataset order."""

    def __init__(self, features: torch.Tensor, targets: torch.Tensor):
        self.features, self.targets = features, targets

    @classmethod
    @torch.no_grad()
    def of(
        cls,
        model: TaskModel,
        dataset: Dataset,
        batch_size: int,
        progress: bool,
        desc: str,
        world: World = LOCAL,
    ) -> ClipFeatures:
        """One forward per clip, in the batches `evaluate` uses (so the same padding); with
        several processes (hib.distributed) each computes a contiguous run of those batches
        and every process gets them all."""
        model.eval()
        starts = range(0, len(dataset), batch_size)
        if len(starts) < world.size:  # too few batches to share out
            world = LOCAL
        part = world.part(len(starts))
        features, targets = [], []
        for start in tqdm(
            starts[part.start : part.stop], desc=desc, leave=False, disable=not progress
        ):
            stop = min(start + batch_size, len(dataset))
            batch = model.collate([dataset[i] for i in range(start, stop)])
            features.append(model.features(model.upstream(batch.waves).hidden_states, batch))
            targets.append(torch.as_tensor(batch.targets))
        return cls(
            world.gather_rows(torch.cat(features).float()), world.gather_rows(torch.cat(targets))
        )

    def __len__(self) -> int:
        return len(self.targets)

    def batches(self, order: Sequence[int], size: int) -> Iterator[tuple[torch.Tensor, Batch]]:
        """(features, the batch's targets) for `order`, in batches of `size`."""
        for start in range(0, len(order), size):
            rows = torch.as_tensor(
                order[start : start + size], dtype=torch.long, device=self.features.device
            )
            no_waves = self.features.new_empty((len(rows), 0))
            yield self.features[rows], Batch(no_waves, self.targets[rows])

    @torch.no_grad()
    def evaluate(self, model: TaskModel, batch_size: int) -> EvalResult:
        """The task's metric from the features (what `evaluate` gives on the clips)."""
        model.eval()
        predictions, batches = [], []
        for features, batch in self.batches(range(len(self)), batch_size):
            predictions.append(model.decide(model.outputs_of_features(features, batch)))
            batches.append(batch)
        return model.summarize(predictions, batches)


@contextmanager
def one_thread() -> Iterator[None]:
    """Steps of a head on features are tiny: a parallel region costs more than it saves, and
    on a loaded 2-core machine it waits for a descheduled thread (an epoch of SID's head:
    0.3 s on one thread, 1.7-2.7 s on two, measured side by side)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
