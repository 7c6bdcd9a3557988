"""The Task interface: what a downstream task reads, its model, its loss and its metric.

Every method, sweep, comparison and report talks to a task through two objects:

- a `Task` (one per run, built from the config): reads its splits (the real layout or the
  synthesized default), builds its `TaskModel`, batches training data, and turns predictions
  into its `Metric`;
- a `TaskModel` (upstream + task head): batches items (`collate`), computes the task's loss on a
  batch (what bottlenecks, gradient scores and fitted gates minimise) and its predictions, from
  waveforms or from known layer inputs (`hib.layer_cache`).

A new task is one module with a `Task` and a `TaskModel` subclass plus one `register_task` line
(docs/tasks.md shows a user's own classification task).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from hib.data.corpora import resolve_data_root
from hib.device import module_device
from hib.distributed import LOCAL, Part, World
from hib.errors import ConfigError
from hib.heads import Heads, HeadStats
from hib.upstream.base import Upstream

if TYPE_CHECKING:
    from hib.config import Config


@dataclass(frozen=True)
class Metric:
    """A task's figure of merit and its direction (accuracy up, WER down)."""

    name: str
    higher_is_better: bool

    def goodness(self, value: float) -> float:
        """`value` oriented so that larger is better (for ranking and "above random")."""
        return value if self.higher_is_better else -value

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "higher_is_better": self.higher_is_better}


@dataclass
class Batch:
    """One batch as a task model reads it: waveforms as the upstream takes them, the targets
    (class labels, slot labels, transcripts), and the true lengths where clips were padded."""

    waves: torch.Tensor
    targets: Any
    lengths: torch.Tensor | None = None
    part: Part | None = None
    """The rows of a global batch this process holds (hib.distributed); None: all of it."""

    def __len__(self) -> int:
        return int(self.waves.shape[0])

    @property
    def counted(self) -> int:
        """Clips that count: a process's stand-in for an empty part counts none."""
        return len(self) if self.part is None else self.part.count

    def repeat(self, n: int) -> Batch:
        """n copies stacked along the batch (several integrated-gradient steps at once)."""
        return Batch(repeat(self.waves, n), repeat(self.targets, n), repeat(self.lengths, n))

    def without_waves(self) -> Batch:
        """The batch's targets alone, for caches that keep layer inputs instead of audio."""
        return Batch(self.waves.new_empty((len(self), 0)), self.targets, self.lengths)

    def to(self, device: torch.device) -> Batch:
        """The batch on `device` (itself where it is there already); texts stay as they are."""
        if self.waves.device == device:
            return self
        moved = (_moved(part, device) for part in (self.waves, self.targets, self.lengths))
        return replace(self, **dict(zip(("waves", "targets", "lengths"), moved, strict=True)))

    def pin_memory(self) -> Batch:
        """The batch in pinned host memory (a DataLoader's `pin_memory=True` calls this)."""
        pinned = (_pinned(part) for part in (self.waves, self.targets, self.lengths))
        return replace(self, **dict(zip(("waves", "targets", "lengths"), pinned, strict=True)))


def _moved(part: Any, device: torch.device) -> Any:
    # to a GPU, a pinned tensor copies while the host goes on (any other copies as it would
    # anyway); back to the host, only a blocking copy is safe to read at once
    if not isinstance(part, torch.Tensor):
        return part
    return part.to(device, non_blocking=device.type == "cuda")


def _pinned(part: Any) -> Any:
    return part.pin_memory() if isinstance(part, torch.Tensor) else part


def repeat(items: Any, n: int) -> Any:
    """n copies along the first dimension: tensor rows, list items (None stays None)."""
    if items is None:
        return None
    if isinstance(items, torch.Tensor):
        return items.repeat(n, *([1] * (items.dim() - 1)))
    return list(items) * n


@dataclass
class EvalResult:
    """A split's metric, its size, and the task's breakdown (per class, words counted ...)."""

    metric: str
    value: float
    n: int
    details: dict[str, Any] = field(default_factory=dict)  # in to_dict: per class, words ...
    items: list[Any] = field(default_factory=list)  # per-utterance breakdown, kept out of it

    def __getattr__(self, name: str) -> Any:  # result.accuracy, result.wer
        if name == self.__dict__.get("metric"):
            return self.__dict__["value"]
        raise AttributeError(name)

    def to_dict(self) -> dict[str, Any]:
        return {self.metric: self.value, "n": self.n, **self.details}


class TaskModel(nn.Module):
    """An upstream plus the task's head, and what a task computes with them.

    Subclasses set `metric` and define `collate`, `outputs` (differentiable, from the
    upstream's hidden states), `loss_of`, `predict` and `summarize`; the forwards from
    waveforms or from layer inputs are shared, so every method works from either.
    """

    metric: ClassVar[Metric]
    eval_batch_size: ClassVar[int] = 64  # clips per forward without gradients
    fit_batch_size: ClassVar[int] = 32  # clips per step of a method that takes gradients

    def __init__(self, upstream: Upstream, head: nn.Module):
        super().__init__()
        self.upstream = upstream
        self.head = head
        self.head_stats: HeadStats | None = None  # context mean/std per head, set after training

    def head_source(self) -> Any:
        """What holds the heads methods score: the upstream, unless the task reaches more
        (Whisper's decoder heads: `heads.scope`)."""
        return self.upstream

    def heads(self) -> Heads:
        """The scored heads, with this model's statistics (for mean fill and HIB)."""
        return Heads(self.head_source(), self.head_stats)

    def stats_forward(self, batch: Batch) -> None:
        """The forward whose head contexts give the statistics (`Heads.fit_stats`)."""
        self.upstream(batch.waves)

    def replaced(self, **modules: nn.Module) -> TaskModel:
        """A shallow copy sharing everything but the named submodules (`upstream=`, `head=`)."""
        copy = object.__new__(type(self))
        copy.__dict__ = dict(self.__dict__)
        copy._modules = {**self._modules, **modules}
        return copy

    @property
    def device(self) -> torch.device:
        """Where the model computes (hib.device): where its batches are sent."""
        return module_device(self)

    def freeze_upstream(self, frozen: bool = True) -> None:
        for p in self.upstream.parameters():
            p.requires_grad_(not frozen)

    # --- what a task defines -----------------------------------------------------------
    def collate(self, items: Sequence[Any]) -> Batch:
        raise NotImplementedError

    def outputs(self, hidden_states: list[torch.Tensor], batch: Batch) -> torch.Tensor:
        """The task head's differentiable output (class logits, teacher-forced token logits)."""
        raise NotImplementedError

    def loss_of(self, outputs: torch.Tensor, batch: Batch, reduction: str = "mean") -> torch.Tensor:
        """The task loss; reduction "sum" adds one loss per example (per-example gradients)."""
        raise NotImplementedError

    def predict(self, hidden_states: list[torch.Tensor], batch: Batch) -> Any:
        """What the metric scores: class indices, transcripts ..."""
        raise NotImplementedError

    def summarize(self, predictions: list[Any], batches: list[Batch]) -> EvalResult:
        """The metric over a split from each batch's predictions (and its targets)."""
        raise NotImplementedError

    def answer(self, outputs: torch.Tensor, batch: Batch) -> Any:
        """The model's own answer (attattr's target): the predicted class, or for a sequence
        task the reference tokens it is scored on."""
        raise NotImplementedError

    def answer_probability(self, outputs: torch.Tensor, batch: Batch, answer: Any) -> torch.Tensor:
        """The probability `outputs` give `answer`, summed over the batch (attattr's F)."""
        raise NotImplementedError

    # --- optional: a head that reads a per-clip summary of the hidden states ------------
    supports_features: ClassVar[bool] = False
    """True when `outputs` depends on the hidden states only through `features`: then a
    frozen upstream's features are computed once and the head is trained on them (hib.train)."""

    def features(self, hidden_states: list[torch.Tensor], batch: Batch) -> torch.Tensor:
        """(B, ...) per-clip summary from which `outputs_of_features` gives `outputs`."""
        raise NotImplementedError

    def outputs_of_features(self, features: torch.Tensor, batch: Batch) -> torch.Tensor:
        raise NotImplementedError

    def decide(self, outputs: torch.Tensor) -> Any:
        """Outputs -> what `predict` returns (with `features`: predictions without a forward)."""
        raise NotImplementedError

    def correct(self, outputs: torch.Tensor, batch: Batch) -> torch.Tensor | None:
        """Examples the outputs get right, when that needs no decoding (None otherwise): lets
        ablation rank heads by the metric itself where it is cheap."""
        return None

    # --- shared forwards ---------------------------------------------------------------
    def forward(self, batch: Batch | torch.Tensor) -> torch.Tensor:
        """Outputs of a batch, or of bare waveforms (equal-length clips, for a task whose
        outputs need no targets: class logits)."""
        if isinstance(batch, torch.Tensor):
            batch = Batch(batch, None)
        return self.outputs(self.upstream(batch.waves).hidden_states, batch)

    def loss(self, batch: Batch, reduction: str = "mean") -> torch.Tensor:
        return self.loss_of(self(batch), batch, reduction)

    def outputs_from(self, states: list[torch.Tensor], batch: Batch) -> torch.Tensor:
        """Outputs from known raw layer inputs (Upstream.layer_inputs): the forward of the
        layers after them only, for methods that change one layer's heads at a time."""
        return self.outputs(self.upstream.forward_from(states).hidden_states, batch)

    def layer_inputs(self, batch: Batch) -> list[torch.Tensor]:
        return self.upstream.layer_inputs(batch.waves)

    def head_state(self) -> dict[str, torch.Tensor]:
        """The trained task head's weights a checkpoint stores (none for a pretrained head)."""
        return self.head.state_dict()

    def batches(self, dataset: Dataset, batch_size: int) -> Iterator[Batch]:
        """The dataset in order, collated in batches on the model's device, without a
        DataLoader (a DataLoader draws its base seed from the global RNG, which a resumed
        training run reproduces)."""
        device = self.device
        for start in range(0, len(dataset), batch_size):
            stop = min(start + batch_size, len(dataset))
            yield self.collate([dataset[i] for i in range(start, stop)]).to(device)


@dataclass
class Splits:
    """A task's three roles: fitting (train), validation (choices), test (reported)."""

    train: Dataset
    validation: Dataset
    test: Dataset
    root: Path

    def __getitem__(self, name: str) -> Any:
        if name not in ("train", "validation", "test", "root"):
            raise KeyError(name)
        return getattr(self, name)


class Task:
    """One downstream task, configured by a run's `Config`."""

    name: ClassVar[str]
    metric: ClassVar[Metric]  # = its model class's
    trains_head: ClassVar[bool] = True  # False: the pretrained model's own head (ASR)
    score_clips: ClassVar[int] = 1000  # training clips `hib score` fits a method on
    compare_clips: ClassVar[int] = 500  # ... and `hib compare`, per method and seed
    corpus: ClassVar[Callable[[bool], Path] | None] = None
    """The synthesized corpus read when data.root is unset (built once, cached; None: the
    keyword corpus)."""

    def __init__(self, config: Config):
        self.config = config

    def root(self, progress: bool = True) -> Path:
        """The data folder: data.root, else the task's synthesized corpus, built if missing."""
        return resolve_data_root(self.config.data, progress, default=type(self).corpus)

    def load_splits(self, progress: bool = True) -> Splits:
        raise NotImplementedError

    def limited(self, train: Dataset, validation: Dataset, test: Dataset, root: Path) -> Splits:
        """The splits cut to data.{train,eval,test}_limit: seeded subsets, one seed per role."""
        data, seed = self.config.data, self.config.seed
        return Splits(
            train=_limit(train, data.train_limit, seed),
            validation=_limit(validation, data.eval_limit, seed + 1),
            test=_limit(test, data.test_limit, seed + 2),
            root=root,
        )

    def read_split(self, root: Path, split: str) -> Dataset:
        """Any folder in the task's real layout (`hib eval --data DIR --split S`)."""
        raise NotImplementedError

    def split_names(self) -> tuple[str, ...] | None:
        """The split names `read_split` accepts (None: any folder name)."""
        return None

    def build_model(self) -> TaskModel:
        raise NotImplementedError

    augments_training: ClassVar[bool] = False
    """True when training batches are transformed or resampled on the fly (KS's noise), so a
    clip's features differ per epoch; False lets hib.train compute them once."""

    def train_order(self, n: int, epoch: int, clips: int | None = None) -> list[int]:
        """A seeded shuffle of the n training items for `epoch` (`clips` of them: repeated or
        cut), the order `train_batches` batches them in."""
        generator = torch.Generator().manual_seed(self.config.seed * 1000 + epoch)
        order = torch.randperm(n, generator=generator).tolist()
        if clips is not None:
            order = (order * (clips // max(n, 1) + 1))[:clips]
        return order

    def train_batches(
        self,
        train_set: Dataset,
        model: TaskModel,
        epoch: int,
        clips: int | None = None,
        world: World = LOCAL,
    ) -> Iterable[Batch]:
        """Training batches of one epoch on the model's device: `train_order`, in batches of
        train.batch_size (`world`'s part of each: hib.distributed)."""
        order = self.train_order(len(train_set), epoch, clips)
        batches = world.batches(train_set, order, self.config.train.batch_size, model.collate)
        return (batch.to(model.device) for batch in batches)

    def stats_batches(
        self, train_set: Dataset, model: TaskModel, world: World = LOCAL
    ) -> Iterable[Batch]:
        """Batches for each head's context statistics (mean fill, HIB's prior)."""
        return self.train_batches(train_set, model, epoch=-1, world=world)


def _limit(dataset: Any, n: int | None, seed: int) -> Any:
    """A seeded random subset of n items (all when n is None or larger)."""
    if n is None or n >= len(dataset):
        return dataset
    order = np.random.default_rng(seed).permutation(len(dataset))[:n]
    return dataset.subset(sorted(order.tolist()))


TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    TASKS[cls.name] = cls
    return cls


def task_class(name: str) -> type[Task]:
    """The registered task `name` (importing hib.tasks.TASK_MODULES registers them)."""
    from hib.tasks import TASK_MODULES

    for module in TASK_MODULES:
        importlib.import_module(module)
    if name not in TASKS:
        raise ConfigError(
            f"config key 'task': unknown task {name!r} (known: {', '.join(sorted(TASKS))})"
        )
    return TASKS[name]


def make_task(config: Config) -> Task:
    return task_class(config.task)(config)


def metric_of(name: str) -> Metric:
    return task_class(name).metric
