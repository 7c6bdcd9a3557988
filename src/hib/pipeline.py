"""The Python API behind the CLI: a trained run folder, scored, pruned and reported.

run = Run("runs/demo/ks")
run.score("hib")                        # (L, H) scores -> results.json, scores/hib.safetensors
run.prune("hib", ratios=[0.2, 0.4])     # the task's metric (accuracy, WER) on the test split
run.prune("hib", [0.4], compensate="lsq")  # ... and after a least-squares repair (hib.compensate)
run.prune("fisher", [0.4], rearrange=True)  # ... and with Kwon et al.'s within-layer rearrangement
"""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hib.bench import bench_pruning
from hib.checkpoint import load_run, load_run_config, save_pruned
from hib.compensate import DEFAULT_CLIPS, Calibration, Compensation, check_clips, check_kind
from hib.compensate import compensate as solve_compensation
from hib.device import resolve_device
from hib.distributed import LOCAL, World
from hib.errors import HibError
from hib.evaluate import EvalResult, eval_batch_size, evaluate, pruned_model
from hib.io import read_tensors
from hib.layer_cache import LayerCache
from hib.methods import METHODS, HeadMethod, get_method, method_class
from hib.precision import resolve_precision
from hib.prune import (
    check_ratio,
    curve_area,
    n_to_prune,
    parse_ratios,
    point_value,
    prune_mask,
    refit_head,
    sweep,
)
from hib.results import read_results, update_results
from hib.rundir import save_run_tensors, verified
from hib.tasks.base import Metric, Splits, Task, TaskModel, make_task

VALIDATION_RATIOS = parse_ratios("0:0.9:0.1")
CALIBRATION_EPOCH = 20_000  # the training draw compensation calibrates on (refit: 10_000)
RANDOM_SEEDS = 3  # = `hib compare`'s default seeds, so both meet the same random masks


class Run:
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

    # --- scores --------------------------------------------------------------------------
    def _method(self, name: str, seed: int | None = None, **options: Any):
        common = {
            "seed": self.config.seed if seed is None else seed,
            "batch_size": self.model.fit_batch_size,
            "progress": self.progress,
            "world": self.world,
        }
        return get_method(name, **{**common, **options})  # options win (batch_size ...)

    def _fitted(
        self, name: str, seed: int | None = None, **options: Any
    ) -> tuple[HeadMethod, torch.Tensor]:
        """(the method, its scores on the training split): the method too, for its options
        and extras."""
        method = self._method(name, seed, **options)
        return method, method.score(self.model, self.split("train"))

    def compute_scores(self, name: str, seed: int | None = None, **options: Any) -> torch.Tensor:
        return self._fitted(name, seed, **options)[1]

    def select(
        self,
        name: str,
        candidates: dict[str, Sequence] | None = None,
        ratios: list[float] = VALIDATION_RATIOS,
        **options: Any,
    ) -> dict:
        """Fit `name` at each combination of its tuned options' candidates (the method's
        `tuned`, or `candidates`); keep the one with the best validation-curve area over
        `ratios` (largest accuracy, smallest WER ...). Returns the chosen options, its scores
        and extras (`HeadMethod.extras`) and every candidate's area."""
        grid = {**method_class(name).tuned, **(candidates or {})}
        trials = []
        for values in itertools.product(*grid.values()):
            chosen = dict(zip(grid, values, strict=True))
            method, scores = self._fitted(name, **chosen, **options)
            curve = sweep(
                self.model,
                self.split("validation"),
                scores,
                ratios,
                self.fill,
                evaluate_masked=lambda mask: self.split_metric("validation", mask),
            )
            label = ",".join(_option_text(v) for v in values)
            area = curve_area(curve)
            trials.append(
                {
                    "options": chosen,
                    "label": label,
                    "area": area,
                    "scores": scores,
                    "extras": method.extras(),
                }
            )
            if self.progress:
                what = ", ".join(f"{k} {_option_text(v)}" for k, v in chosen.items())
                print(f"{name} {what}: validation area {area:.4f}")
        best = max(trials, key=lambda t: self.metric.goodness(t["area"]))
        return {
            **best["options"],
            "scores": best["scores"],
            "extras": best["extras"],
            "validation_areas": {t["label"]: t["area"] for t in trials},
        }

    def tuned_options(self, name: str) -> dict[str, Any]:
        """The tuned options this run already chose for `name` (results.json), if any."""
        record = read_results(self.dir).get("methods", {}).get(name, {})
        return {k: record[k] for k in method_class(name).tuned if record.get(k) is not None}

    def score(self, name: str, **options: Any) -> torch.Tensor:
        """Score heads with a method, store the scores (and the method's extras, in the same
        file) and record them in results.json."""
        start = time.perf_counter()
        record: dict[str, Any] = {}
        untuned = [k for k in method_class(name).tuned if options.get(k) is None]
        if untuned:  # chosen on validation; given values stay fixed
            fixed = {k: v for k, v in options.items() if k not in untuned}
            chosen = self.select(name, **fixed)
            scores, extras = chosen.pop("scores"), chosen.pop("extras")
            record.update(chosen)
        else:
            method, scores = self._fitted(name, **options)
            extras = method.extras()
            record.update(method.options())
        record["seconds"] = time.perf_counter() - start
        record["scores"] = scores.tolist()
        if self.world.is_main:
            save_run_tensors(self.dir, f"scores/{name}.safetensors", {**extras, "scores": scores})
            update_results(self.dir, {"methods": {name: record}})
        return scores

    def stored_tensors(self, name: str) -> dict[str, torch.Tensor]:
        """Everything `score` stored for `name`: "scores" and the method's extras."""
        path = self.dir / "scores" / f"{name}.safetensors"
        if not path.is_file():
            raise HibError(
                f"no {name} scores in {self.dir}: run `hib score {self.dir} --method {name}` first"
            )
        return read_tensors(verified(self.dir, f"scores/{name}.safetensors"))[0]

    def stored_scores(self, name: str) -> torch.Tensor:
        path = self.dir / "scores" / f"{name}.safetensors"
        scores = self.stored_tensors(name).get("scores")
        shape = tuple(self.model.heads().shape)
        if scores is None or tuple(scores.shape) != shape:
            found = "no scores" if scores is None else f"shape {tuple(scores.shape)}"
            raise HibError(f"{path}: {found}, but the upstream has {shape} heads; re-score it")
        return scores

    def rearranger(self, name: str) -> Callable[[torch.Tensor], torch.Tensor]:
        """ranked mask -> `name`'s rearranged mask (`HeadMethod.rearrange`, with the extras
        stored beside its scores); a HibError for a method without one, or old scores."""
        method = method_class(name)
        if method.rearrange_extras is None:
            having = ", ".join(
                n for n, c in sorted(METHODS.items()) if c.rearrange_extras is not None
            )
            raise HibError(f"--rearrange: method {name} has no mask rearrangement (only {having})")
        extras = self.stored_tensors(name)
        missing = [key for key in method.rearrange_extras if key not in extras]
        if missing:
            raise HibError(
                f"--rearrange: the stored {name} scores have no {', '.join(missing)} (scored "
                f"before hib stored them); re-score: `hib score {self.dir} --method {name}`"
            )
        alive = self.model.heads().alive()
        return lambda mask: method.rearrange(extras, mask, alive)

    # --- compensation ----------------------------------------------------------------------
    def calibration(self) -> Calibration:
        """The unpruned model on `compensate_clips` training clips (one seeded draw, as the
        task trains), computed once per clip count."""
        clips = check_clips(self.compensate_clips)
        if clips not in self._calibrations:
            batches = self.task.train_batches(
                self.split("train"), self.model, epoch=CALIBRATION_EPOCH, clips=clips
            )
            self._calibrations[clips] = Calibration(self.model, batches, clips)
        return self._calibrations[clips]

    def compensation(self, mask: torch.Tensor, kind: str) -> Compensation:
        """`mask`'s `kind` compensation (hib.compensate) on the run's calibration clips;
        memoised per mask, kind and clip count."""
        check_kind(kind)
        key = (kind, self.compensate_clips, mask.to(torch.bool).numpy().tobytes())
        if key not in self._compensations:
            self._compensations[key] = solve_compensation(
                self.model, mask, self.calibration(), kind
            )
        return self._compensations[key]

    def compensation_record(self, kind: str) -> dict[str, Any]:
        """What results.json says of a sweep's compensations: kind, clips, mean seconds."""
        solved = [
            c for k, c in self._compensations.items() if k[:2] == (kind, self.compensate_clips)
        ]
        changed = [c.seconds for c in solved if c.first_layer < len(c.error)]
        return {
            "kind": kind,
            "clips": self.compensate_clips,
            "target": solved[0].target if solved else None,
            "seconds": float(np.mean(changed)) if changed else 0.0,
        }

    # --- pruning -------------------------------------------------------------------------
    def split_metric(self, split: str, mask: torch.Tensor, compensate: str | None = None) -> float:
        """The metric on a split with `mask` applied (and its `compensate` compensation);
        memoised, since sweeps of many methods and seeds keep meeting the same masks (no
        pruning, everything pruned, shared low-ranked heads), so no mask is evaluated twice in
        a run."""
        spec = None if compensate is None else (check_kind(compensate), self.compensate_clips)
        key = (split, self.fill, self.precision, mask.to(torch.bool).numpy().tobytes(), spec)
        if key not in self._metric:
            compensation = None if compensate is None else self.compensation(mask, compensate)
            result = self.evaluate(self.split(split), mask, compensation=compensation)
            self._metric[key] = result.value
        return self._metric[key]

    def test_metric(self, mask: torch.Tensor) -> float:
        return self.split_metric("test", mask)

    def rescorer(
        self, name: str, seed: int | None = None, **options: Any
    ) -> Callable[[torch.Tensor], torch.Tensor]:
        """Iterative pruning's re-scoring: mask -> `name`'s scores on the model with the mask's
        heads physically removed, so a method meets only the heads that remain (a fit on the
        masked model would see a removed head's fill as a context: HIB's bottleneck put noise
        on it and charged its capacity). Memoised per mask: a sweep meets the same mask again
        where two ratios prune as many heads (ratio 0 and the first step, for one)."""
        fitted: dict[bytes, torch.Tensor] = {}

        def rescore(mask: torch.Tensor) -> torch.Tensor:
            key = mask.to(torch.bool).numpy().tobytes()
            if key not in fitted:
                model = pruned_model(self.model, mask, self.fill)
                fitted[key] = self._method(name, seed, **options).score(model, self.split("train"))
            return fitted[key]

        return rescore

    def _seed_scores(self, name: str) -> list[torch.Tensor]:
        """A stochastic method (random) is a distribution, so its curve is a mean over seeds;
        others score once."""
        if not method_class(name).stochastic:
            return [self.stored_scores(name)]
        return [self.compute_scores(name, seed=self.config.seed + s) for s in range(RANDOM_SEEDS)]

    def prune(
        self,
        name: str,
        ratios: list[float],
        min_per_layer: int = 0,
        iterative: bool = False,
        refit_ratios: list[float] | None = None,
        compensate: str | None = None,
        rearrange: bool = False,
    ) -> dict:
        """The metric on the test split at each ratio (and after re-fitting the task head; and
        with `compensate`, hib.compensate's kind, after compensating each mask; and with
        `rearrange`, of each mask rearranged within its layers: each its own curve, never mixed
        with the plain one; re-fit and compensation use the plain masks)."""
        if compensate is not None:
            check_kind(compensate)
        rescore = None
        if rearrange and iterative:
            raise HibError("--rearrange uses the blocks stored at scoring; not with --iterative")
        if iterative:
            if method_class(name).stochastic:
                raise HibError(f"--iterative makes no sense for {name} scores (a random draw)")
            rescore = self.rescorer(name, **self.tuned_options(name))
        metrics = {"curve": self.test_metric}
        if compensate is not None:
            metrics["curve_compensated"] = lambda mask: self.split_metric("test", mask, compensate)
        if rearrange:
            rearranged = self.rearranger(name)
            metrics["curve_rearranged"] = lambda mask: self.test_metric(rearranged(mask))
        swept = self._sweeps(name, ratios, min_per_layer, metrics, rescore)
        curves = swept["curve"]
        record: dict[str, Any] = {
            "curve": mean_curve(curves),
            "fill": self.fill,
            "min_per_layer": min_per_layer,
            "iterative": iterative,
        }
        if len(curves) > 1:
            record["curves_per_seed"] = curves
        if compensate is not None:
            record["curve_compensated"] = mean_curve(swept["curve_compensated"])
            record["compensate"] = self.compensation_record(compensate)
        if rearrange:
            record["curve_rearranged"] = mean_curve(swept["curve_rearranged"])
        if refit_ratios:
            record["curve_refit"] = self.refit_curve(name, refit_ratios, min_per_layer)
        update_results(self.dir, {"methods": {name: record}})
        return record

    def refit_curve(self, name: str, ratios: list[float], min_per_layer: int) -> list[dict]:
        def refit_metric(mask: torch.Tensor) -> float:
            refit = self._refit(mask)
            return self.evaluate(self.split("test"), mask, refit).value

        return mean_curve(
            self._sweeps(name, ratios, min_per_layer, {"refit": refit_metric})["refit"]
        )

    def _sweeps(
        self,
        name: str,
        ratios: list[float],
        min_per_layer: int,
        metrics: dict[str, Callable[[torch.Tensor], float]],
        rescore: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> dict[str, list[list[dict]]]:
        """Per metric, one curve per seed of `name`'s scores: the masks of one sweep (one
        rescoring when iterative), each scored by every metric."""
        out: dict[str, list[list[dict]]] = {key: [] for key in metrics}
        for scores in self._seed_scores(name):
            values: dict[str, list[float]] = {key: [] for key in metrics}

            def every(mask: torch.Tensor, values: dict[str, list[float]] = values) -> float:
                for key, metric in metrics.items():
                    values[key].append(metric(mask))
                return next(iter(values.values()))[-1]

            curve = sweep(
                self.model,
                self.split("test"),
                scores,
                ratios,
                self.fill,
                min_per_layer,
                rescore,
                evaluate_masked=every,
            )
            for key in metrics:
                out[key].append(
                    [{**p, self.metric.name: v} for p, v in zip(curve, values[key], strict=True)]
                )
        return out

    def _refit(self, mask: torch.Tensor, compensation: Compensation | None = None) -> TaskModel:
        """The model with its task head re-trained on the `mask`-pruned (and compensated)
        features."""
        return refit_head(
            self.task,
            self.model,
            mask,
            self.split("train"),
            self.fill,
            self.precision,
            compensation,
        )

    def mask_for(
        self, name: str, ratio: float, min_per_layer: int = 0, rearrange: bool = False
    ) -> torch.Tensor:
        """The keep-mask `name`'s stored scores give at pruned fraction `ratio` (`rearrange`:
        then rearranged within its layers, `rearranger`)."""
        check_ratio(ratio)
        heads = self.model.heads()
        n = n_to_prune(ratio, heads.n_layers * heads.n_heads)
        mask = prune_mask(self.stored_scores(name), n, min_per_layer)
        return self.rearranger(name)(mask) if rearrange else mask

    def pruned_result(self, name: str, ratio: float, dataset: Any) -> dict:
        """Evaluate `dataset` with `name`'s pruning at `ratio` (mean fill unless configured)."""
        return self.evaluate(dataset, self.mask_for(name, ratio)).to_dict()

    def export(
        self,
        name: str,
        ratio: float,
        out: Path,
        refit: bool = False,
        compensate: str | None = None,
        rearrange: bool = False,
    ) -> Path:
        """Write a physically pruned copy of the model (its mask optionally rearranged,
        `mask_for`; optionally compensated, hib.compensate, and with a task head re-fitted on
        those features)."""
        if compensate is not None:
            check_kind(compensate)
        if self.model.head_source() is not self.model.upstream:
            raise HibError(
                f"export prunes upstream heads only; heads.scope={self.config.heads.scope} "
                "reaches the decoder (score, prune and eval work there; export does not yet)"
            )
        mask = self.mask_for(name, ratio, rearrange=rearrange)
        compensation = None if compensate is None else self.compensation(mask, compensate)
        model = self.model
        if refit:
            model = self._refit(mask, compensation)
        model = copy.deepcopy(model)
        if compensation is None:
            model.heads().prune(mask, self.fill)
        else:
            compensation.prune(model.heads())
        spec = {
            "method": name,
            "ratio": ratio,
            "rearranged": rearrange,
            "fill": self.fill,
            "refit": self.config.refit.__dict__ if refit else None,
            "compensate": None if compensation is None else compensation.summary(),
            "source": str(self.dir),
        }
        save_pruned(Path(out), model, self.config, spec)
        return Path(out)

    def generalization(self, name: str, ratios: list[float], other: Any) -> list[dict]:
        """The metric with `name`'s pruning on the test split and on another corpus, per ratio."""
        points = []
        for ratio in ratios:
            mask = self.mask_for(name, ratio)
            points.append(
                {
                    "ratio": ratio,
                    "pruned": int((~mask).sum()),
                    "test": self.test_metric(mask),
                    "other": self.evaluate(other, mask).value,
                }
            )
        return points

    def bench(
        self, name: str, ratio: float, batch: int = 16, repeats: int = 30
    ) -> dict[str, float]:
        """Physically pruned vs unpruned on the first `batch` test clips (bench_pruning)."""
        test = self.split("test")
        clips = torch.utils.data.Subset(test, range(min(batch, len(test))))
        waves = next(self.model.batches(clips, batch)).waves
        return bench_pruning(self.model, self.mask_for(name, ratio), waves, self.fill, repeats)


def mean_curve(curves: list[list[dict]]) -> list[dict]:
    """The point-wise mean of curves over the same ratios (random's seeds)."""
    mean = []
    for points in zip(*curves, strict=True):
        (name,) = (k for k in points[0] if k not in ("ratio", "pruned"))
        value = float(np.mean([point_value(p) for p in points]))
        mean.append({"ratio": points[0]["ratio"], "pruned": points[0]["pruned"], name: value})
    return mean


def _option_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
