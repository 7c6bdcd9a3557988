"""report.html: figures inlined as base64, so the file opens offline on its own."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from hib.checkpoint import CONFIG_FILE
from hib.io import write_text
from hib.report.figures import curves_figure, heatmaps_figure
from hib.results import read_results

TABLE_RATIOS = (0.2, 0.4, 0.6)


def accuracy_at(curve: list[dict] | None, ratio: float) -> float | None:
    for point in curve or []:
        if abs(point["ratio"] - ratio) < 1e-6:
            return point["accuracy"]
    return None


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f} %"


def _table(results: dict) -> str:
    head = "".join(f"<th>{int(r * 100)} % pruned</th>" for r in TABLE_RATIOS)
    refit = "".join(f"<th>{int(r * 100)} % + refit</th>" for r in TABLE_RATIOS)
    rows = []
    for name, record in sorted(results.get("methods", {}).items()):
        cells = "".join(
            f"<td>{_fmt(accuracy_at(record.get('curve'), r))}</td>" for r in TABLE_RATIOS
        )
        cells += "".join(
            f"<td>{_fmt(accuracy_at(record.get('curve_refit'), r))}</td>" for r in TABLE_RATIOS
        )
        seconds = record.get("seconds")
        cells += f"<td>{'–' if seconds is None else f'{seconds:.1f}'}</td>"
        rows.append(f"<tr><th>{html.escape(name)}</th>{cells}</tr>")
    return (
        f"<table><tr><th>method</th>{head}{refit}<th>scoring seconds</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{path.stem}" src="data:image/png;base64,{data}">'


def write_report(run_dir: Path) -> Path:
    run_dir = Path(run_dir)
    results = read_results(run_dir)
    curves = curves_figure(results, run_dir / "curves.png")
    heatmaps = heatmaps_figure(results, run_dir / "heatmaps.png")
    config = (run_dir / CONFIG_FILE).read_text() if (run_dir / CONFIG_FILE).is_file() else ""
    upstream = results.get("upstream", {})
    timings = {
        "seconds_total": results.get("seconds_total"),
        "train_seconds": results.get("train", {}).get("seconds"),
        **{f"{n}_seconds": r.get("seconds") for n, r in results.get("methods", {}).items()},
    }
    body = f"""<!doctype html><html><head><meta charset="utf-8"><title>hib report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
pre{{background:#f6f6f6;padding:1em;overflow:auto}}img{{max-width:100%}}</style></head><body>
<h1>Head importance report</h1>
<p>Task <b>{html.escape(str(results.get("task", "ks")))}</b>, upstream
<b>{html.escape(str(upstream.get("name", "?")))}</b> ({upstream.get("n_layers", "?")} layers x
{upstream.get("n_heads", "?")} heads). Unpruned test accuracy
<b>{_fmt(results.get("accuracy"))}</b>. Removed heads pass their training-mean context unless
the config says otherwise; curves without re-fit keep the task head as trained.</p>
<h2>Accuracy vs fraction of heads pruned</h2>{_img(curves)}
<h2>Accuracy at fixed pruned fractions (test split)</h2>{_table(results)}
<h2>Head scores (higher = more important)</h2>{_img(heatmaps)}
<h2>Timings (seconds)</h2><pre>{html.escape(json.dumps(timings, indent=2))}</pre>
<h2>Config</h2><pre>{html.escape(config)}</pre>
</body></html>
"""
    return write_text(run_dir / "report.html", body)
