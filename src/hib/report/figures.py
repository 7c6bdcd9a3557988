"""Matplotlib figures from results.json: pruning curves and score heatmaps."""

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
            curve = record.get(key)
            if curve:
                x = [p["ratio"] for p in curve]
                y = [point_value(p) for p in curve]
                ax.plot(x, y, style, color=color, label=label, markersize=3)
    if unpruned is not None:
        ax.axhline(unpruned, color="gray", lw=0.8, ls=":", label="unpruned")
    ax.set_xlabel("fraction of heads pruned")
    ax.set_ylabel(
        f"test {metric.name} ({'higher' if metric.higher_is_better else 'lower'} is better)"
    )
    if metric.higher_is_better:
        ax.set_ylim(0, 1)
    else:  # an error rate: from 0, and a runaway point (looping decoder) must not flatten the rest
        ax.set_ylim(0, min(ax.get_ylim()[1], 1.5))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def heatmaps_figure(methods: dict, path: Path) -> Path:
    """Layer x head score matrix of each method (each on its own colour scale)."""
    scored = [(n, r) for n, r in sorted(methods.items()) if "scores" in r]
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
