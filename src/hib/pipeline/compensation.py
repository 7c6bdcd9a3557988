"""Compensating a run's pruned masks (hib.compensate): one calibration per clip count, one
solve per mask, and what results.json says of them."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hib.compensate import Calibration, Compensation, check_clips, check_kind
from hib.compensate import compensate as solve_compensation

CALIBRATION_EPOCH = 20_000  # the training draw compensation calibrates on (refit: 10_000)


class Compensating:
    """`Run`'s compensations (mixed into hib.pipeline.Run, whose attributes it reads)."""

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
