"""Matplotlib figures from results.json: pruning curves (one plot, or one panel per method)
and score heatmaps."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hib.io import atomic_write  # noqa: E402
from hib.prune import point_value  # noqa: E402
from hib.tasks.base import Metric  # noqa: E402


def _save(fig, path: Path) -> Path:
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return path


def curves_figure(methods: dict, metric: Metric, unpruned: float | None, path: Path) -> Path:
    """The metric vs pruned fraction, every method on one plot; re-fit curves dashed,
    compensated ones dotted, rearranged ones (fisher) dash-dotted."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (name, record) in enumerate(sorted(methods.items())):
        color = f"C{i}"
        styles = (
            ("curve", "-o", name),
            ("curve_refit", "--s", f"{name} (refit)"),
            ("curve_compensated", ":^", f"{name} (compensated)"),
            ("curve_rearranged", "-.d", f"{name} (rearranged)"),
        )
        for key, style, label in styles:
            if record.get(key):
                _plot_curve(ax, record[key], style, color=color, label=label, markersize=3)
    if unpruned is not None:
        ax.axhline(unpruned, color="gray", lw=0.8, ls=":", label="unpruned")
    ax.set_xlabel("fraction of heads pruned")
    ax.set_ylabel(
        f"test {metric.name} ({'higher' if metric.higher_is_better else 'lower'} is better)"
    )
    _metric_limits(ax, metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _plot_curve(ax, curve: list[dict], style: str, **kwargs) -> None:
    ax.plot([p["ratio"] for p in curve], [point_value(p) for p in curve], style, **kwargs)


def _metric_limits(ax, metric: Metric) -> None:
    if metric.higher_is_better:
        ax.set_ylim(0, 1)
    else:  # an error rate: from 0, and a runaway point (looping decoder) must not flatten the rest
        ax.set_ylim(0, min(ax.get_ylim()[1], 1.5))


def panels_figure(
    methods: dict, order: list[str], metric: Metric, unpruned: float | None, path: Path
) -> Path:
    """Small multiples: one panel per method in `order` (best first), each with HIB and random
    behind it on the same axes, so 14 curves never tangle into one plot; a compensated
    comparison adds the method's compensated curve, dotted."""
    cols = min(len(order), 4)
    rows = -(-len(order) // cols)
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.0 * cols, 2.4 * rows), sharex=True, sharey=True, squeeze=False
    )
    for ax in axes.flat[len(order) :]:
        ax.axis("off")
    for rank, (ax, name) in enumerate(zip(axes.flat, order, strict=False), start=1):
        for other, color in (("random", "0.7"), ("hib", "0.35")):
            if other != name and methods.get(other, {}).get("curve"):
                _plot_curve(ax, methods[other]["curve"], "--", color=color, lw=1, label=other)
        _plot_curve(ax, methods[name]["curve"], "-o", color="C0", markersize=3, label=name)
        if methods[name].get("curve_compensated"):
            compensated = methods[name]["curve_compensated"]
            _plot_curve(ax, compensated, ":^", color="C1", markersize=3, label="compensated")
        if unpruned is not None:
            ax.axhline(unpruned, color="gray", lw=0.6, ls=":")
        area = methods[name].get("auc")
        ax.set_title(
            f"{rank}. {name}" + ("" if area is None else f"  (AUC {area:.3f})"), fontsize=9
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="best")
    _metric_limits(axes.flat[0], metric)
    fig.supxlabel("fraction of heads pruned", fontsize=9)
    fig.supylabel(f"test {metric.name}", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def heatmaps_figure(methods: dict, path: Path, order: list[str] | None = None) -> Path:
    """Layer x head score matrix of each method (each on its own colour scale), in `order`
    (default: by name)."""
    names = sorted(methods) if order is None else order
    scored = [(n, methods[n]) for n in names if "scores" in methods[n]]
    cols = min(max(len(scored), 1), 4)
    rows = max(1, -(-len(scored) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.flat[len(scored) :]:
        ax.axis("off")
    for ax, (name, record) in zip(axes.flat, scored, strict=False):
        scores = np.asarray(record["scores"], dtype=float)
        image = ax.imshow(scores, cmap="viridis", aspect="auto")
        ax.set_title(name)
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        if scores.shape[1] <= 16:
            ax.set_xticks(range(scores.shape[1]))
        if scores.shape[0] <= 16:
            ax.set_yticks(range(scores.shape[0]))
        fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    return _save(fig, path)
