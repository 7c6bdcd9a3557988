"""Accuracy of a KS model on a split: overall and per class."""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from hib.config import PRECISIONS
from hib.data.speech_commands import CLASSES, KSDataset


@dataclass
class EvalResult:
    accuracy: float
    n: int
    per_class: dict[str, float]

    def to_dict(self) -> dict:
        return asdict(self)


def autocast(precision: str) -> contextlib.AbstractContextManager:
    """The numeric precision of an evaluation forward: float32 as is, bfloat16 by CPU autocast
    (matrix products in bf16, reductions in fp32), which AMX and AVX512-BF16 run 2-2.6x faster."""
    if precision == "float32":
        return contextlib.nullcontext()
    if precision == "bfloat16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    raise ValueError(f"unknown precision '{precision}' (choose from {', '.join(PRECISIONS)})")


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    dataset: KSDataset,
    batch_size: int = 64,
    progress: bool = False,
    precision: str = "float32",
) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted labels, true labels) over the whole dataset, in order."""
    model.eval()
    preds, labels = [], []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    with autocast(precision):
        for waves, y in tqdm(loader, desc="eval", disable=not progress, leave=False):
            preds.append(model(waves).float().argmax(dim=-1))
            labels.append(y)
    if not preds:
        return torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long)
    return torch.cat(preds), torch.cat(labels)


def score_predictions(preds: torch.Tensor, labels: torch.Tensor) -> EvalResult:
    per_class = {}
    for idx, name in enumerate(CLASSES):
        mask = labels == idx
        if mask.any():
            per_class[name] = (preds[mask] == idx).float().mean().item()
    n = len(labels)
    accuracy = (preds == labels).float().mean().item() if n else float("nan")
    return EvalResult(accuracy=accuracy, n=n, per_class=per_class)


def evaluate(
    model: torch.nn.Module,
    dataset: KSDataset,
    batch_size: int = 64,
    progress: bool = False,
    precision: str = "float32",
) -> EvalResult:
    return score_predictions(*predict(model, dataset, batch_size, progress, precision))
