"""Every method on the same heads, data and protocol: curves, area, faithfulness, stability, cost.

For each method and seed: score on the same number of training clips, sweep the pruned fraction
on the test split (no retraining, the run's fill). Written to results.json["comparison"],
beside (not over) the single-seed curves of `hib prune`. Reported per method, in the task's
metric (accuracy, WER ...) with its direction:

- auc: mean metric over pruned fractions 0-90 % (mean over seeds, and its std);
- the metric at 20/40/60 % pruned (of the mean curve), e.g. "accuracy@40" or "wer@40";
- spearman_ablation: Spearman correlation of the (seed-mean) scores with the single-head
  `ablation` scores, the reference for faithfulness;
- stability: mean pairwise Spearman correlation of the scores across seeds;
- seconds: mean wall time of one scoring;
- with `compensate` (hib.compensate's kind): the same sweep after compensating every mask,
  in its own keys (curve_compensated, auc_compensated, auc_compensated_std,
  "accuracy@40_compensated" ...), so every criterion gets the same repair.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from hib.compensate import check_kind
from hib.distributed import LOCAL
from hib.downstream import ACCURACY
from hib.errors import HibError
from hib.methods import METHODS
from hib.pipeline import Run, mean_curve
from hib.prune import curve_area, parse_ratios, sweep
from hib.report.html import by_auc, metric_at
from hib.results import update_results
from hib.tasks.base import Metric

SWEEP = parse_ratios("0:1:0.05")


def _spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    rho = spearmanr(a.flatten().numpy(), b.flatten().numpy()).statistic
    return float(rho) if np.isfinite(rho) else 0.0


def _stability(scores: list[torch.Tensor]) -> float | None:
    pairs = list(itertools.combinations(scores, 2))
    return float(np.mean([_spearman(a, b) for a, b in pairs])) if pairs else None


def _tuned(run: Run, name: str, clips: int) -> dict[str, Any]:
    """A method's tuned options (HIB's beta): the ones already chosen for this run, else
    chosen now on validation."""
    options = run.tuned_options(name)
    if len(options) < len(METHODS[name].tuned):
        chosen = run.select(name, clips=clips)
        options = {k: chosen[k] for k in METHODS[name].tuned}
    return options


def compare(
    run: Run,
    methods: list[str] | None = None,
    seeds: int = 3,
    clips: int | None = None,
    ratios: list[float] = SWEEP,
    min_steps: int | None = None,
    compensate: str | None = None,
    method_options: dict[str, dict[str, Any]] | None = None,
) -> dict:
    """Run the comparison into results.json["comparison"]; returns the per-method table.
    `clips`: training clips per scoring (None: the task's default); `min_steps`: the fitted
    methods' step floor (HeadMethod.passes; None: theirs), the same for every method;
    `compensate`: also sweep every method's masks compensated (run.compensate_clips clips);
    `method_options`: one method's own options by name (e.g. {"attattr": {"steps": 10}}),
    recorded in its row."""
    if compensate is not None:
        check_kind(compensate)
    clips = run.task.compare_clips if clips is None else clips
    metric = run.metric
    names = methods or sorted(METHODS)
    if "ablation" not in names:
        names = [*names, "ablation"]
    strays = sorted(set(method_options or {}) - set(names))
    if strays:
        raise HibError(f"options for {', '.join(strays)}: not among the compared methods")
    options = {name: _options(run, name, clips, min_steps, method_options) for name in names}
    cells = _cells(
        run, [(n, s) for n in names for s in range(seeds)], clips, options, ratios, compensate
    )
    table: dict[str, dict[str, Any]] = {}
    all_scores: dict[str, list[torch.Tensor]] = {}
    for name in names:
        done = [cells[(name, s)] for s in range(seeds)]
        scores = [torch.tensor(c["scores"]) for c in done]
        curves = [c["curve"] for c in done]
        areas = [curve_area(c) for c in curves]
        curve = mean_curve(curves)
        all_scores[name] = scores
        table[name] = {
            "scores": torch.stack(scores).mean(0).tolist(),
            "curve": curve,
            "curves_per_seed": curves,
            "auc": float(np.mean(areas)),
            "auc_std": float(np.std(areas)),
            **{f"{metric.name}@{int(r * 100)}": metric_at(curve, r) for r in (0.2, 0.4, 0.6)},
            "stability": _stability(scores),
            "seconds": float(np.mean([c["seconds"] for c in done])),
            "seeds": seeds,
            "clips": clips,
            **options[name],
        }
        if compensate is not None:
            table[name].update(_compensated_columns([c["compensated"] for c in done], metric))
    reference = torch.stack(all_scores["ablation"]).mean(0)
    for row in table.values():
        row["spearman_ablation"] = _spearman(torch.tensor(row["scores"]), reference)
    summary = {
        "seeds": seeds,
        "clips": clips,
        "ratios": ratios,
        "auc_max_ratio": 0.9,
        "metric": metric.to_dict(),
        "compensate": None if compensate is None else run.compensation_record(compensate),
    }
    if run.world.is_main:
        update_results(run.dir, {"comparison": {**summary, "methods": table}})
    return table


def _options(
    run: Run,
    name: str,
    clips: int,
    min_steps: int | None,
    method_options: dict[str, dict[str, Any]] | None,
) -> dict[str, Any]:
    """A method's options in the comparison: tuned (on every process together), the step
    floor, and its own options."""
    options = _tuned(run, name, clips)
    if min_steps is not None:
        options["min_steps"] = min_steps
    options.update((method_options or {}).get(name, {}))
    return options


def _cells(
    run: Run,
    grid: list[tuple[str, int]],
    clips: int,
    options: dict[str, dict[str, Any]],
    ratios: list[float],
    compensate: str | None,
) -> dict[tuple[str, int], dict[str, Any]]:
    """Each (method, seed) cell's scores, seconds and curves; with several processes
    (hib.distributed) each computes every size-th cell on its own, and all get every cell."""
    world = run.world
    run.split("test")  # loaded by every process at once (Run.splits), before the cells part
    mine = {}
    for name, s in grid[world.rank :: world.size]:
        start = time.perf_counter()
        scores = run.compute_scores(
            name, seed=run.config.seed + s, clips=clips, world=LOCAL, **options[name]
        )
        seconds = time.perf_counter() - start
        curve = _sweep(run, scores, ratios, None)
        compensated = None if compensate is None else _sweep(run, scores, ratios, compensate)
        if run.progress:
            print(f"{name} seed {s}: area {curve_area(curve):.4f} ({seconds:.1f} s)")
        mine[f"{name}/{s}"] = {
            "scores": scores.tolist(),
            "seconds": seconds,
            "curve": curve,
            "compensated": compensated,
        }
    gathered = {key: cell for cells in world.gather_json(mine) for key, cell in cells.items()}
    return {(name, s): gathered[f"{name}/{s}"] for name, s in grid}


def _sweep(run: Run, scores: torch.Tensor, ratios: list[float], compensate: str | None):
    """One seed's curve on the test split (each mask compensated with `compensate`)."""
    return sweep(
        run.model,
        run.split("test"),
        scores,
        ratios,
        run.fill,
        evaluate_masked=lambda mask: run.split_metric("test", mask, compensate),
    )


def _compensated_columns(curves: list[list[dict]], metric: Metric) -> dict[str, Any]:
    areas = [curve_area(c) for c in curves]
    curve = mean_curve(curves)
    return {
        "curve_compensated": curve,
        "curves_per_seed_compensated": curves,
        "auc_compensated": float(np.mean(areas)),
        "auc_compensated_std": float(np.std(areas)),
        **{
            f"{metric.name}@{int(r * 100)}_compensated": metric_at(curve, r)
            for r in (0.2, 0.4, 0.6)
        },
    }


def format_table(table: dict[str, dict[str, Any]], metric: Metric = ACCURACY) -> str:
    """The methods x (AUC, metric at 20/40/60 %, Spearman with ablation, seconds) table, as
    text, best method first."""
    short = metric.name[:3]
    at = " ".join(f"{f'{short}@{p}':>7}" for p in (20, 40, 60))
    compensated = any("auc_compensated" in r for r in table.values())
    extra = f" {'AUC comp.':>9} {f'{short}@40 c.':>9}" if compensated else ""
    lines = [f"{'method':<12} {'AUC':>13} {at}{extra} {'rho_abl':>7} {'stab':>6} {'seconds':>8}"]

    def fmt(value: float | None, width: int, digits: int) -> str:
        return f"{'-':>{width}}" if value is None else f"{value:{width}.{digits}f}"

    for name, r in ((n, table[n]) for n in by_auc(table, metric)):
        accs = " ".join(fmt(r[f"{metric.name}@{p}"], 7, 4) for p in (20, 40, 60))
        if compensated:
            at40 = r.get(f"{metric.name}@40_compensated")
            accs += f" {fmt(r.get('auc_compensated'), 9, 4)} {fmt(at40, 9, 4)}"
        lines.append(
            f"{name:<12} {r['auc']:.4f}±{r['auc_std']:.4f} {accs} "
            f"{fmt(r['spearman_ablation'], 7, 2)} {fmt(r['stability'], 6, 2)} "
            f"{fmt(r['seconds'], 8, 1)}"
        )
    return "\n".join(lines)
