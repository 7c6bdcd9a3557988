"""Intent classification (SUPERB IC, Fluent Speech Commands): action, object and location of a
spoken command; accuracy = all three slots right.

Splits come from an FSC-layout folder (`data/{train,valid,test}_data.csv` + `wavs/speakers/`;
the synthesized corpus of hib.data.synth.ic_corpus by default), split by speaker. The model is
SUPERB's: the utterance head with one linear classifier per slot on the pooled features (one
linear layer to all slots' values, split per slot), the loss the sum of the slots'
cross-entropies.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from hib.data.corpora import ic_corpus
from hib.data.fsc import SPLIT_FILES, VOCABULARY, ICDataset, load_fsc
from hib.downstream import ACCURACY, UtteranceClassifier, UtteranceHead
from hib.tasks.base import Batch, EvalResult, Splits, Task, register_task
from hib.upstream.base import Upstream


class SlotClassifier(UtteranceClassifier):
    """Waveforms -> logits of every slot's values, concatenated (B, sum of slot sizes);
    targets and predictions are (B, n_slots) value indices."""

    def __init__(self, upstream: Upstream, head: UtteranceHead, slots: dict[str, Sequence[str]]):
        names = [f"{slot}={value}" for slot, values in slots.items() for value in values]
        super().__init__(upstream, head, names)
        self.slots = {slot: tuple(values) for slot, values in slots.items()}

    @classmethod
    def build(
        cls, upstream: Upstream, slots: dict[str, Sequence[str]], proj_dim: int = 256
    ) -> SlotClassifier:
        n_values = sum(len(v) for v in slots.values())
        head = UtteranceHead(upstream.n_layers + 1, upstream.hidden_size, n_values, proj_dim)
        return cls(upstream, head, slots)

    def per_slot(self, outputs: torch.Tensor) -> list[torch.Tensor]:
        """The logits of each slot, in slot order."""
        return list(outputs.split([len(v) for v in self.slots.values()], dim=-1))

    def loss_of(self, outputs: torch.Tensor, batch: Batch, reduction: str = "mean") -> torch.Tensor:
        return sum(
            F.cross_entropy(logits, batch.targets[:, k], reduction=reduction)
            for k, logits in enumerate(self.per_slot(outputs))
        )

    def decide(self, outputs: torch.Tensor) -> torch.Tensor:
        return torch.stack([s.float().argmax(dim=-1) for s in self.per_slot(outputs)], dim=1)

    def summarize(self, predictions: list[torch.Tensor], batches: list[Batch]) -> EvalResult:
        n_slots = len(self.slots)
        preds = torch.cat(predictions) if predictions else torch.empty(0, n_slots)
        labels = torch.cat([b.targets for b in batches]) if batches else torch.empty(0, n_slots)
        right = preds == labels
        n = len(labels)
        per_slot = {s: right[:, k].float().mean().item() for k, s in enumerate(self.slots) if n}
        value = right.all(dim=1).float().mean().item() if n else float("nan")
        return EvalResult("accuracy", value, n, {"per_slot": per_slot})

    def answer_probability(
        self, outputs: torch.Tensor, batch: Batch, answer: torch.Tensor
    ) -> torch.Tensor:
        """The probability of the whole intent: the product of its slots' probabilities."""
        chosen = [
            logits.softmax(dim=-1).gather(1, answer[:, k, None])
            for k, logits in enumerate(self.per_slot(outputs))
        ]
        return torch.cat(chosen, dim=1).prod(dim=1).sum()

    def correct(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        return (self.decide(outputs) == batch.targets).all(dim=1).sum().float()


@register_task
class IntentClassification(Task):
    name = "ic"
    metric = ACCURACY
    corpus = ic_corpus

    def load_splits(self, progress: bool = True) -> Splits:
        root = self.root(progress)
        train, validation, test = (self.read_split(root, split) for split in SPLIT_FILES)
        return self.limited(train, validation, test, root)

    def read_split(self, root: Path, split: str) -> ICDataset:
        return load_fsc(root, split).by_length()

    def split_names(self) -> tuple[str, ...]:
        return tuple(SPLIT_FILES)

    def build_model(self) -> SlotClassifier:
        return SlotClassifier.from_config(self.config, VOCABULARY)
