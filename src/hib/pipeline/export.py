"""What a run's pruned model is used for: a physically pruned copy on disk, its metric on
another corpus, its speed."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from hib.bench import bench_pruning
from hib.checkpoint import save_pruned
from hib.compensate import check_kind
from hib.errors import HibError


class Exporting:
    """`Run`'s pruned outputs (mixed into hib.pipeline.Run, whose attributes it reads)."""

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
