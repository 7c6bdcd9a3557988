"""Scoring heads in a run: fit a method (its tuned options chosen on validation), store its
scores and extras, read them back; re-scoring for iterative pruning."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from hib.errors import HibError
from hib.evaluate import pruned_model
from hib.io import read_tensors
from hib.methods import METHODS, HeadMethod, get_method, method_class
from hib.prune import curve_area, parse_ratios, sweep
from hib.results import read_results, update_results
from hib.rundir import save_run_tensors, verified

VALIDATION_RATIOS = parse_ratios("0:0.9:0.1")
RANDOM_SEEDS = 3  # = `hib compare`'s default seeds, so both meet the same random masks


class Scoring:
    """`Run`'s scores (mixed into hib.pipeline.Run, whose attributes it reads)."""

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


def _option_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
