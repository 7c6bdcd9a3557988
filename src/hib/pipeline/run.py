"""`Run`: a run folder with its task, model and data loaded once; the scoring, pruning,
compensation and export it offers come from one mixin each (this package's other modules)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from hib.checkpoint import load_run, load_run_config
from hib.compensate import DEFAULT_CLIPS, Calibration, Compensation
from hib.device import resolve_device
from hib.distributed import LOCAL, World
from hib.evaluate import EvalResult, eval_batch_size, evaluate
from hib.layer_cache import LayerCache
from hib.pipeline.compensation import Compensating
from hib.pipeline.export import Exporting
from hib.pipeline.pruning import Pruning
from hib.pipeline.scoring import Scoring
from hib.precision import resolve_precision
from hib.tasks.base import Metric, Splits, Task, TaskModel, make_task


class Run(Scoring, Pruning, Compensating, Exporting):
    """A run folder (trained, or created for a pretrained head), with its task, model and data
    loaded once; the model on `device` (auto, cpu, cuda: hib.device), else the run's config's.
    `world`: the processes scoring together (hib.distributed): the methods that can run
    data-parallel over them, the main process writes."""

    def __init__(
        self,
        run_dir: str | Path,
        progress: bool = True,
        device: str | None = None,
        world: World = LOCAL,
    ):
        self.dir = Path(run_dir)
        self.config = load_run_config(self.dir)
        self.device = resolve_device(device or self.config.device)
        self.config, self.model = load_run(self.dir, self.device)
        self.task: Task = make_task(self.config)
        self.world = world
        self.progress = progress and world.is_main
        self._splits: Splits | None = None
        self._metric: dict[tuple, float] = {}
        self.compensate_clips = DEFAULT_CLIPS  # calibration clips of a compensation
        self._calibrations: dict[int, Calibration] = {}
        self._compensations: dict[tuple[str, int, bytes], Compensation] = {}
        budget = int(self.config.eval.cache_gb * 2**30)
        self.layer_cache = LayerCache(budget, disk_dir=self.dir / "cache")

    @property
    def metric(self) -> Metric:
        return self.model.metric

    @property
    def splits(self) -> Splits:
        if self._splits is None:
            with self.world.main_first():  # a missing corpus is built once
                self._splits = self.task.load_splits(self.progress)
        return self._splits

    def split(self, name: str) -> Any:
        return self.splits[name]

    @property
    def fill(self) -> str:
        return self.config.heads.fill

    def evaluate(
        self,
        dataset: Any,
        mask: torch.Tensor | None = None,
        model: TaskModel | None = None,
        progress: bool = False,
        compensation: Compensation | None = None,
    ) -> EvalResult:
        """The task's metric on `dataset`, with `mask` applied (the run's fill; compensated
        with `compensation`), at the run's precision, from the run's cache of unmasked layer
        inputs."""
        model = self.model if model is None else model
        return evaluate(
            model,
            dataset,
            eval_batch_size(self.config, model),
            progress=progress,
            precision=self.precision,
            mask=mask,
            fill=self.fill,
            cache=self.layer_cache,
            compensation=compensation,
        )

    @cached_property
    def precision(self) -> str:
        """The evaluation precision this machine uses (`auto` resolved: hib.precision)."""
        return resolve_precision(self.config.eval.precision, device=self.device)
