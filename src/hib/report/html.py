"""report.html: figures inlined as base64, so the file opens offline on its own."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from hib.checkpoint import CONFIG_FILE
from hib.io import write_text
from hib.prune import point_value
from hib.report.figures import curves_figure, heatmaps_figure, panels_figure
from hib.results import read_results
from hib.tasks.base import Metric

TABLE_RATIOS = (0.2, 0.4, 0.6)


def metric_at(curve: list[dict] | None, ratio: float) -> float | None:
    """The curve's metric value at `ratio` (None when the curve has no such point)."""
    for point in curve or []:
        if abs(point["ratio"] - ratio) < 1e-6:
            return point_value(point)
    return None


def run_metric(results: dict) -> Metric:
    """The run's metric (runs written before tasks had metrics: accuracy)."""
    found = results.get("metric") or {"name": "accuracy", "higher_is_better": True}
    return Metric(found["name"], found["higher_is_better"])


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def _num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        f"<tr><th>{html.escape(r[0])}</th>" + "".join(f"<td>{c}</td>" for c in r[1:]) + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _pruning_table(methods: dict) -> str:
    header = ["method"] + [f"{int(r * 100)} % pruned" for r in TABLE_RATIOS]
    header += [f"{int(r * 100)} % + refit" for r in TABLE_RATIOS] + ["scoring s"]
    rows = [
        [name]
        + [_pct(metric_at(rec.get("curve"), r)) for r in TABLE_RATIOS]
        + [_pct(metric_at(rec.get("curve_refit"), r)) for r in TABLE_RATIOS]
        + [_num(rec.get("seconds"), 1)]
        for name, rec in sorted(methods.items())
    ]
    return _html_table(header, rows)


def by_auc(methods: dict, metric: Metric) -> list[str]:
    """The comparison's method names, best curve area first (the order of its table and
    panels)."""
    return sorted(methods, key=lambda name: -metric.goodness(methods[name]["auc"]))


def _comparison_table(methods: dict, metric: Metric) -> str:
    """One row per method, best AUC first; a compensated comparison adds its own AUC and the
    compensated metric at 40 % (never mixed into the plain columns)."""
    at = [f"{metric.name}@{int(x * 100)} %" for x in TABLE_RATIOS]
    header = ["method", f"AUC (0-90 %, {metric.name})", "± std", *at]
    compensated = any("auc_compensated" in r for r in methods.values())
    if compensated:
        header += ["AUC compensated", "± std", f"{metric.name}@40 % compensated"]
    header += ["Spearman vs ablation", "stability", "seconds"]
    rows = []
    for name in by_auc(methods, metric):
        r = methods[name]
        row = [name, _pct(r["auc"]), _pct(r["auc_std"])]
        row += [_pct(r.get(f"{metric.name}@{int(x * 100)}")) for x in TABLE_RATIOS]
        if compensated:
            row += [_pct(r.get("auc_compensated")), _pct(r.get("auc_compensated_std"))]
            row += [_pct(r.get(f"{metric.name}@40_compensated"))]
        row += [_num(r["spearman_ablation"]), _num(r["stability"]), _num(r["seconds"], 1)]
        rows.append(row)
    return _html_table(header, rows)


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{path.stem}" src="data:image/png;base64,{data}">'


def _comparison_section(results: dict, run_dir: Path) -> str:
    comparison = results.get("comparison")
    if not comparison:
        return ""
    methods = comparison["methods"]
    metric = run_metric(results)
    order = by_auc(methods, metric)
    panels = panels_figure(
        methods, order, metric, results.get(metric.name), run_dir / "comparison_curves.png"
    )
    heatmaps = heatmaps_figure(methods, run_dir / "comparison_heatmaps.png", order)
    return f"""<h2>Comparison of every method</h2>
<p>{comparison["seeds"]} seeds, {comparison["clips"]} training clips per scoring, pruned
fractions {", ".join(f"{r:g}" for r in comparison["ratios"])}; no retraining. AUC is the mean
{metric.name} over pruned fractions 0-90 % ({"higher" if metric.higher_is_better else "lower"}
is better; best first); Spearman is against single-head ablation scores; stability is the mean
pairwise Spearman of scores across seeds; seconds per scoring.{_compensation_note(comparison)}
One panel per method, in the table's order, with HIB and random dashed behind it; then each
method's scores.</p>
{_comparison_table(methods, metric)}{_img(panels)}{_img(heatmaps)}"""


def _compensation_note(comparison: dict) -> str:
    record = comparison.get("compensate")
    if not record:
        return ""
    return (
        f" Compensated columns and the dotted curves: every method's masks after the"
        f" <code>{html.escape(str(record['kind']))}</code> least-squares repair of each pruned"
        f" layer on {record['clips']} training clips (hib.compensate), no retraining."
    )


def _generalization_section(results: dict) -> str:
    gen = results.get("generalization")
    if not gen:
        return ""
    rows = [
        [f"{100 * p['ratio']:.0f} % ({p['pruned']} heads)", _pct(p["test"]), _pct(p["other"])]
        for p in gen["points"]
    ]
    table = _html_table(["pruned", "test split", html.escape(gen["other"])], rows)
    return f"""<h2>Generalisation of the {html.escape(gen["method"])} pruning</h2>
<p>The same pruned models on {gen["n_other"]} clips of voices the corpus never used.</p>{table}"""


def _precision_note(results: dict) -> str:
    """Say when accuracies were measured below float32, with the float32 figure beside it."""
    precision = results.get("precision", "float32")
    if precision == "float32":
        return ""
    name = run_metric(results).name
    return (
        f" (evaluation forwards in {html.escape(precision)}; float32: "
        f"{_pct(results.get(f'{name}_float32'))})"
    )


def write_report(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    results = read_results(run_dir)
    methods = results.get("methods", {})
    metric = run_metric(results)
    curves = curves_figure(methods, metric, results.get(metric.name), run_dir / "curves.png")
    heatmaps = heatmaps_figure(methods, run_dir / "heatmaps.png")
    config = (run_dir / CONFIG_FILE).read_text() if (run_dir / CONFIG_FILE).is_file() else ""
    upstream = results.get("upstream", {})
    timings = {
        "seconds_total": results.get("seconds_total"),
        "train_seconds": results.get("train", {}).get("seconds"),
        **{f"{n}_seconds": r.get("seconds") for n, r in methods.items()},
    }
    body = f"""<!doctype html><html><head><meta charset="utf-8"><title>hib report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
pre{{background:#f6f6f6;padding:1em;overflow:auto}}img{{max-width:100%}}</style></head><body>
<h1>Head importance report</h1>
<p>Task <b>{html.escape(str(results.get("task", "ks")))}</b>, upstream
<b>{html.escape(str(upstream.get("name", "?")))}</b> ({upstream.get("n_layers", "?")} layers x
{upstream.get("n_heads", "?")} heads). Unpruned test {metric.name}
<b>{_pct(results.get(metric.name))}</b>{_precision_note(results)}. Removed heads pass their
training-mean context unless the config says otherwise; curves without re-fit keep the task
head as trained.</p>
<h2>{metric.name.upper() if len(metric.name) <= 3 else metric.name.capitalize()} vs fraction of
heads pruned</h2>{_img(curves)}
<h2>{metric.name.capitalize()} at fixed pruned fractions (test split)</h2>{_pruning_table(methods)}
<h2>Head scores (higher = more important)</h2>{_img(heatmaps)}
{_generalization_section(results)}
{_comparison_section(results, run_dir)}
<h2>Timings (seconds)</h2><pre>{html.escape(json.dumps(timings, indent=2))}</pre>
<h2>Config</h2><pre>{html.escape(config)}</pre>
</body></html>
"""
    return write_text(run_dir / "report.html", body)
