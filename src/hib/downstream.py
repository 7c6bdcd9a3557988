"""SUPERB's utterance-level downstream, shared by every utterance classification task (KS, SID,
IC, a user's own).

Learnable softmax-weighted sum over all hidden layers (each layer normalised first, so a layer's
scale does not decide its weight), linear to 256, mean pooling over time (over the valid frames
of padded clips), linear to the classes. The upstream is frozen unless the config fine-tunes it.

Layer norm acts per frame and everything after it up to the pooling is affine, so the head's
output depends on the hidden states only through each layer's pooled, normalised states
(`features`): a frozen upstream's features are computed once per clip and the head trained on
them (hib.train), with the same outputs as from the hidden states up to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import default_collate

from hib.tasks.base import Batch, EvalResult, Metric, TaskModel
from hib.upstream.base import Upstream

if TYPE_CHECKING:
    from hib.config import Config

ACCURACY = Metric("accuracy", higher_is_better=True)


class UtteranceHead(nn.Module):
    """Task head on top of the upstream's hidden states (the part trained in SUPERB)."""

    def __init__(self, n_hidden_states: int, hidden_size: int, n_classes: int, proj_dim: int = 256):
        super().__init__()
        self.layer_weights = nn.Parameter(torch.zeros(n_hidden_states))
        self.proj = nn.Linear(hidden_size, proj_dim)
        self.classifier = nn.Linear(proj_dim, n_classes)

    def pool(self, hidden_states: list[torch.Tensor]) -> torch.Tensor:
        """Weighted layer sum -> (B, T, D)."""
        stacked = torch.stack(hidden_states, dim=0)  # (L, B, T, D)
        stacked = F.layer_norm(stacked, stacked.shape[-1:])
        weights = torch.softmax(self.layer_weights, dim=0)
        return torch.einsum("l,lbtd->btd", weights, stacked)

    def forward(
        self, hidden_states: list[torch.Tensor], frames: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits; `frames` (B,) valid positions per clip when the batch was padded."""
        return self.classifier(_time_mean(self.proj(self.pool(hidden_states)), frames))

    def features(
        self, hidden_states: list[torch.Tensor], frames: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(B, L, D): each layer's normalised states pooled over time, before any weight."""
        stacked = torch.stack(hidden_states, dim=1)  # (B, L, T, D)
        normed = F.layer_norm(stacked, stacked.shape[-1:])
        return _time_mean(normed.transpose(1, 2).flatten(2), frames).view(normed.shape[:2] + (-1,))

    def from_features(self, features: torch.Tensor) -> torch.Tensor:
        """The logits `forward` gives, from `features` (exact: the pooling commutes)."""
        weights = torch.softmax(self.layer_weights, dim=0)
        return self.classifier(self.proj(torch.einsum("l,bld->bd", weights, features)))


def _time_mean(x: torch.Tensor, frames: torch.Tensor | None) -> torch.Tensor:
    """(B, T, D) -> (B, D): the mean over each clip's valid frames (all when `frames` is None)."""
    if frames is None:
        return x.mean(dim=1)
    valid = (torch.arange(x.shape[1], device=x.device) < frames[:, None]).to(x.dtype)[..., None]
    return (x * valid).sum(1) / frames[:, None].clamp(min=1).to(x.dtype)


def collate_clips(items: Sequence[tuple[torch.Tensor, Any]]) -> Batch:
    """(waveform, label) items -> a batch; clips of unequal length are zero-padded at the end
    and their lengths kept (equal ones are stacked as they are)."""
    lengths = {len(wave) for wave, _ in items}
    if len(lengths) <= 1:
        waves, labels = default_collate(list(items))
        return Batch(waves, labels)
    sizes = torch.tensor([len(wave) for wave, _ in items])
    waves = torch.zeros(len(items), int(sizes.max()))
    for row, (wave, _) in enumerate(items):
        waves[row, : len(wave)] = wave
    return Batch(waves, default_collate([label for _, label in items]), sizes)


class UtteranceClassifier(TaskModel):
    """Waveforms (B, N) -> class logits (B, n_classes); loss = cross-entropy, metric accuracy
    (overall and per class)."""

    head: UtteranceHead
    metric = ACCURACY
    supports_features = True

    def __init__(self, upstream: Upstream, head: UtteranceHead, classes: Sequence[str]):
        super().__init__(upstream, head)
        self.classes = tuple(classes)

    @classmethod
    def build(
        cls, upstream: Upstream, classes: int | Sequence[str], proj_dim: int = 256
    ) -> UtteranceClassifier:
        """`classes`: their names, or how many (then named by index)."""
        names = [str(i) for i in range(classes)] if isinstance(classes, int) else list(classes)
        head = UtteranceHead(upstream.n_layers + 1, upstream.hidden_size, len(names), proj_dim)
        return cls(upstream, head, names)

    @classmethod
    def from_config(cls, config: Config, classes: Any) -> UtteranceClassifier:
        """The run's upstream (frozen unless fine-tuned) with a fresh head over `classes`."""
        from hib.upstream import load_upstream

        model = cls.build(load_upstream(config.upstream.name), classes, config.downstream.proj_dim)
        model.freeze_upstream(not config.upstream.finetune)
        return model

    def collate(self, items: Sequence[tuple[torch.Tensor, Any]]) -> Batch:
        return collate_clips(items)

    def _frames(self, hidden_states: list[torch.Tensor], batch: Batch) -> torch.Tensor | None:
        if batch.lengths is None:
            return None
        return self.upstream.output_frames(batch.lengths).clamp(max=hidden_states[0].shape[1])

    def outputs(self, hidden_states: list[torch.Tensor], batch: Batch) -> torch.Tensor:
        return self.head(hidden_states, self._frames(hidden_states, batch))

    def features(self, hidden_states: list[torch.Tensor], batch: Batch) -> torch.Tensor:
        return self.head.features(hidden_states, self._frames(hidden_states, batch))

    def outputs_of_features(self, features: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.head.from_features(features)

    def loss_of(self, outputs: torch.Tensor, batch: Batch, reduction: str = "mean") -> torch.Tensor:
        return F.cross_entropy(outputs, batch.targets, reduction=reduction)

    def decide(self, outputs: torch.Tensor) -> torch.Tensor:
        """Outputs -> the predicted class per clip."""
        return outputs.float().argmax(dim=-1)

    def predict(self, hidden_states: list[torch.Tensor], batch: Batch) -> torch.Tensor:
        return self.decide(self.outputs(hidden_states, batch))

    def summarize(self, predictions: list[torch.Tensor], batches: list[Batch]) -> EvalResult:
        empty = torch.empty(0, dtype=torch.long)
        preds = torch.cat(predictions) if predictions else empty
        labels = torch.cat([b.targets for b in batches]) if batches else empty
        per_class = {}
        for idx, name in enumerate(self.classes):
            of_class = labels == idx
            if of_class.any():
                per_class[name] = (preds[of_class] == idx).float().mean().item()
        n = len(labels)
        value = (preds == labels).float().mean().item() if n else float("nan")
        return EvalResult("accuracy", value, n, {"per_class": per_class})

    def answer(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.decide(outputs)

    def answer_probability(
        self, outputs: torch.Tensor, batch: Batch, answer: torch.Tensor
    ) -> torch.Tensor:
        return outputs.softmax(dim=-1).gather(1, answer[:, None]).sum()

    def correct(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor:
        return (outputs.argmax(dim=-1) == batch.targets).sum().float()
