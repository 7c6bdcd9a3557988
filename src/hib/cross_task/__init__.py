"""Several runs on one upstream, side by side: do heads matter differently by task?

`compare_tasks(run_dirs, out)` reads each run's results.json (stored scores and curves; no
model is loaded) and writes out/results.json "cross_task": per method scored in at least two
runs (hib, ablation),

- "spearman" and "spearman_ci": the Spearman correlation of each pair of tasks' head scores,
  with a 95 % bootstrap interval over heads (`stats.spearman_ci`);
- "ranks": each task's scores rank-normalised to [0, 1] (capacities in bits and accuracy drops
  are not on one scale), drawn as heatmaps side by side on one colour scale;
- "layer_share": the share of each task's contribution per layer (`stats.layer_share`);
- "shared_top" / "only_top": the heads every task ranks in its top quarter, and per task the
  ones no other task does;

and for every task "curves" (its HIB metric at 20/40/60 % pruned) and "retention" (its HIB and
random pruning curves relative to unpruned, `stats.retention`). out/report.html (`report`)
shows all of it, links each run's own report, and the joint pruning of `hib.joint` where
out/results.json has one.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hib.cross_task.report import upstream_label, write_cross_report
from hib.cross_task.stats import (
    BOOTSTRAP,
    TOP_SHARE,
    layer_share,
    rank_normalise,
    retention_curve,
    shared_and_only_top,
    spearman,
    spearman_ci,
)
from hib.errors import HibError
from hib.report.html import metric_at, run_metric
from hib.results import read_results, update_results

METHODS = ("hib", "ablation")
RETENTION_METHODS = ("hib", "random")

Runs = list[tuple[str, Path, dict]]


def load_runs(run_dirs: Sequence[Path], names: Sequence[str] | None = None) -> Runs:
    """(name, folder, results) of each run, all on one upstream. A run is named `names[i]`, or
    else by its task (by its folder where two runs have one task)."""
    runs = []
    for run_dir in run_dirs:
        results = read_results(run_dir)
        if "upstream" not in results:
            raise HibError(f"{run_dir}: not a run folder with results (run `hib train` first)")
        runs.append((str(results.get("task", run_dir.name)), run_dir, results))
    if names is None:
        twice = {n for n, c in Counter(n for n, _, _ in runs).items() if c > 1}
        names = [d.name if n in twice else n for n, d, _ in runs]
    if len(set(names)) < len(names):
        raise HibError(f"runs {', '.join(map(str, run_dirs))}: two of them have one name")
    upstreams = {upstream_label(r["upstream"]) for _, _, r in runs}
    if len(upstreams) > 1:
        raise HibError(f"runs are on different upstreams: {sorted(upstreams)}")
    return [(name, d, r) for name, (_, d, r) in zip(names, runs, strict=True)]


def method_scores(runs: Runs, method: str) -> dict[str, np.ndarray]:
    """Each run's `method` scores (L x H), for the runs that have them: those `hib score`
    stored, else the comparison's (its seed mean; the demo scores ablation only there)."""
    found = {}
    for name, _, r in runs:
        for record in (r.get("methods", {}), r.get("comparison", {}).get("methods", {})):
            if "scores" in record.get(method, {}):
                found[name] = np.asarray(record[method]["scores"], dtype=float)
                break
    return found


def compare_tasks(run_dirs: Sequence[Path], out: Path) -> dict[str, Any]:
    """Write out/results.json ("cross_task") and out/report.html; returns the cross-task record."""
    out = Path(out)
    runs = load_runs([Path(d) for d in run_dirs])
    record: dict[str, Any] = {
        "tasks": [name for name, _, _ in runs],
        "runs": [str(d) for _, d, _ in runs],
        "reports": {name: os.path.relpath(d / "report.html", out) for name, d, _ in runs},
        "methods": {},
    }
    for method in METHODS:
        scores = method_scores(runs, method)
        if len(scores) >= 2:
            record["methods"][method] = _method_record(method, scores)
    record["curves"] = {name: _curve_record(r) for name, _, r in runs}
    record["retention"] = {name: _retention(r) for name, _, r in runs}
    fields = {"cross_task": record, "upstream": runs[0][2]["upstream"]}
    update_results(out, fields, replace=("cross_task",))
    write_cross_report(out)
    return record


def _method_record(method: str, scores: dict[str, np.ndarray]) -> dict[str, Any]:
    matrices = list(scores.values())
    shared, only = shared_and_only_top(scores)
    return {
        "tasks": list(scores),
        "spearman": [[spearman(a, b) for b in matrices] for a in matrices],
        "spearman_ci": spearman_ci(matrices),
        "bootstrap": dict(BOOTSTRAP),
        "ranks": {task: rank_normalise(s).tolist() for task, s in scores.items()},
        "layer_share": {task: layer_share(s) for task, s in scores.items()},
        "top_share": TOP_SHARE,
        "shared_top": shared,
        "only_top": only,
        "figure": f"cross_task_{method}.png",
    }


def _curve_record(results: dict) -> dict[str, Any]:
    curve = results.get("methods", {}).get("hib", {}).get("curve")
    return {
        "metric": run_metric(results).to_dict(),
        **{f"{int(x * 100)}": metric_at(curve, x) for x in (0.2, 0.4, 0.6)},
    }


def _retention(results: dict) -> dict[str, list]:
    metric = run_metric(results)
    methods = results.get("methods", {})
    return {
        m: retention_curve(methods[m]["curve"], results.get(metric.name), metric)
        for m in RETENTION_METHODS
        if methods.get(m, {}).get("curve")
    }
