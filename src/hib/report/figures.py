"""Matplotlib figures from results.json: pruning curves and score heatmaps."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hib.io import atomic_write  # noqa: E402


def _save(fig, path: Path) -> Path:
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110, bbox_inches="tight"))
    plt.close(fig)
    return path


def curves_figure(results: dict, path: Path) -> Path:
    """Accuracy vs pruned fraction, every method on one plot; re-fit curves dashed."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (name, record) in enumerate(sorted(results.get("methods", {}).items())):
        color = f"C{i}"
        for key, style, label in (("curve", "-o", name), ("curve_refit", "--s", f"{name} (refit)")):
            curve = record.get(key)
            if curve:
                x = [p["ratio"] for p in curve]
                y = [p["accuracy"] for p in curve]
                ax.plot(x, y, style, color=color, label=label, markersize=3)
    if "accuracy" in results:
        ax.axhline(results["accuracy"], color="gray", lw=0.8, ls=":", label="unpruned")
    ax.set_xlabel("fraction of heads pruned")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def heatmaps_figure(results: dict, path: Path) -> Path:
    """Layer x head score matrix of each method (each on its own colour scale)."""
    methods = [(n, r) for n, r in sorted(results.get("methods", {}).items()) if "scores" in r]
    cols = max(len(methods), 1)
    fig, axes = plt.subplots(1, cols, figsize=(3.2 * cols, 3.0), squeeze=False)
    for ax, (name, record) in zip(axes[0], methods, strict=False):
        scores = np.asarray(record["scores"], dtype=float)
        image = ax.imshow(scores, cmap="viridis", aspect="auto")
        ax.set_title(name)
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_xticks(range(scores.shape[1]))
        ax.set_yticks(range(scores.shape[0]))
        fig.colorbar(image, ax=ax, fraction=0.046)
    return _save(fig, path)
