"""Several runs on one upstream, side by side: do heads matter differently by task?

`compare_tasks(run_dirs, out)` reads each run's stored scores (results.json "methods"), and
writes to `out`:

- results.json "cross_task": per method scored in every run, the Spearman correlation of each
  pair of tasks' head scores (the matrix), and each task's metric at 20/40/60 % pruned;
- report.html: the score heatmaps of every task side by side on one colour scale per method
  (scores are rank-normalised per task, since capacities in bits and accuracy drops are not
  on one scale), the matrix, and links to each run's own report.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import rankdata, spearmanr  # noqa: E402

from hib.errors import HibError  # noqa: E402
from hib.io import write_text  # noqa: E402
from hib.report.figures import _save  # noqa: E402
from hib.report.html import _html_table, _img, _num, _pct, metric_at, run_metric  # noqa: E402
from hib.results import read_results, update_results  # noqa: E402

METHODS = ("hib", "ablation")


def _runs(run_dirs: list[Path]) -> list[tuple[str, Path, dict]]:
    runs = []
    for run_dir in run_dirs:
        results = read_results(run_dir)
        if "upstream" not in results:
            raise HibError(f"{run_dir}: not a run folder with results (run `hib train` first)")
        runs.append((str(results.get("task", run_dir.name)), run_dir, results))
    upstreams = {_upstream_label(r["upstream"]) for _, _, r in runs}
    if len(upstreams) > 1:
        raise HibError(f"runs are on different upstreams: {sorted(upstreams)}")
    return runs


def _upstream_label(upstream: dict) -> str:
    return f"{upstream.get('name')} ({upstream.get('n_layers')}x{upstream.get('n_heads')})"


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    rho = spearmanr(a.ravel(), b.ravel()).statistic
    return float(rho) if np.isfinite(rho) else 0.0


def compare_tasks(run_dirs: list[Path], out: Path) -> dict[str, Any]:
    """Write out/results.json ("cross_task") and out/report.html; returns the cross-task record."""
    runs = _runs([Path(d) for d in run_dirs])
    tasks = [name for name, _, _ in runs]
    record: dict[str, Any] = {"tasks": tasks, "runs": [str(d) for _, d, _ in runs], "methods": {}}
    for method in METHODS:
        scores = {
            name: np.asarray(r["methods"][method]["scores"], dtype=float)
            for name, _, r in runs
            if "scores" in r.get("methods", {}).get(method, {})
        }
        if len(scores) < 2:
            continue
        names = list(scores)
        matrix = [[_spearman(scores[a], scores[b]) for b in names] for a in names]
        record["methods"][method] = {"tasks": names, "spearman": matrix}
        record["methods"][method]["figure"] = str(_heatmaps(scores, method, out))
    record["curves"] = {
        name: {
            "metric": run_metric(r).to_dict(),
            **{
                f"{int(x * 100)}": metric_at(r.get("methods", {}).get("hib", {}).get("curve"), x)
                for x in (0.2, 0.4, 0.6)
            },
        }
        for name, _, r in runs
    }
    update_results(out, {"cross_task": record, "upstream": runs[0][2]["upstream"]})
    _report(record, runs, out)
    return record


def _heatmaps(scores: dict[str, np.ndarray], method: str, out: Path) -> Path:
    """One panel per task, rank-normalised to [0, 1] on one colour scale."""
    fig, axes = plt.subplots(1, len(scores), figsize=(3.4 * len(scores), 3), squeeze=False)
    for ax, (task, s) in zip(axes[0], scores.items(), strict=True):
        ranks = (rankdata(s.ravel()) - 1) / max(s.size - 1, 1)
        image = ax.imshow(ranks.reshape(s.shape), cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.set_title(f"{task}: {method}")
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        ax.set_xticks(range(s.shape[1]))
        ax.set_yticks(range(s.shape[0]))
    fig.colorbar(image, ax=axes[0].tolist(), fraction=0.03, label="score rank (0 = least)")
    return _save(fig, out / f"cross_task_{method}.png")


def _report(record: dict, runs: list[tuple[str, Path, dict]], out: Path) -> Path:
    sections = []
    for method, rec in record["methods"].items():
        names = rec["tasks"]
        rows = [[a] + [_num(v) for v in row] for a, row in zip(names, rec["spearman"], strict=True)]
        sections.append(
            f"<h2>{html.escape(method)} scores by task</h2>"
            f"<p>Spearman correlation of the head scores between tasks.</p>"
            f"{_html_table(['task', *names], rows)}{_img(Path(rec['figure']))}"
        )
    curve_rows = [
        [task, html.escape(c["metric"]["name"])] + [_pct(c[p]) for p in ("20", "40", "60")]
        for task, c in record["curves"].items()
    ]
    links = "".join(
        f'<li><a href="{html.escape(os.path.relpath(d / "report.html", out))}">'
        f"{html.escape(task)}</a></li>"
        for task, d, _ in runs
    )
    body = f"""<!doctype html><html><head><meta charset="utf-8"><title>hib: tasks compared</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px}}
img{{max-width:100%}}</style></head><body>
<h1>Which heads matter for which task</h1>
<p>Upstream <b>{html.escape(_upstream_label(runs[0][2]["upstream"]))}</b>; tasks
{html.escape(", ".join(record["tasks"]))}.</p>
{"".join(sections)}
<h2>HIB pruning on each task (test split, no retraining)</h2>
{_html_table(["task", "metric", "20 % pruned", "40 % pruned", "60 % pruned"], curve_rows)}
<h2>Each task's own report</h2><ul>{links}</ul></body></html>
"""
    return write_text(out / "report.html", body)
