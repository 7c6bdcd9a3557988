"""Pruning a run: the task's metric on a split under a mask (memoised), the test curves of a
method's masks (plain, compensated, rearranged, re-fitted), and the mask of one ratio."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from hib.compensate import Compensation, check_kind
from hib.errors import HibError
from hib.methods import method_class
from hib.prune import check_ratio, n_to_prune, point_value, prune_mask, refit_head, sweep
from hib.results import update_results
from hib.tasks.base import TaskModel


class Pruning:
    """`Run`'s pruning (mixed into hib.pipeline.Run, whose attributes it reads)."""

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


def mean_curve(curves: list[list[dict]]) -> list[dict]:
    """The point-wise mean of curves over the same ratios (random's seeds)."""
    mean = []
    for points in zip(*curves, strict=True):
        (name,) = (k for k in points[0] if k not in ("ratio", "pruned"))
        value = float(np.mean([point_value(p) for p in points]))
        mean.append({"ratio": points[0]["ratio"], "pruned": points[0]["pruned"], name: value})
    return mean
