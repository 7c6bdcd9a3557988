"""out/report.html of several tasks: the one renderer for the cross-task view and the joint
pruning, drawn from out/results.json alone ("cross_task" and "joint", whichever are there), its
figures embedded, so the page opens offline on its own."""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hib.io import write_text  # noqa: E402
from hib.report.figures import _save  # noqa: E402
from hib.report.html import _html_table, _img, _num, _pct  # noqa: E402
from hib.results import read_results  # noqa: E402

STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px}
img{max-width:100%}"""


def upstream_label(upstream: dict) -> str:
    return f"{upstream.get('name')} ({upstream.get('n_layers')}x{upstream.get('n_heads')})"


def head_list(heads: list[list[int]]) -> str:
    """[[2, 3], [0, 1]] -> 'L2.H3, L0.H1' ('none' when empty)."""
    return ", ".join(f"L{layer}.H{head}" for layer, head in heads) or "none"


# --- figures -----------------------------------------------------------------------------
def _layout(ax, shape: tuple[int, int]) -> None:
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_xticks(range(shape[1]))
    ax.set_yticks(range(shape[0]))


def rank_heatmaps_figure(ranks: dict[str, list], method: str, path: Path) -> Path:
    """One panel per task, its rank-normalised scores on one [0, 1] colour scale."""
    fig, axes = plt.subplots(1, len(ranks), figsize=(3.4 * len(ranks), 3), squeeze=False)
    for ax, (task, r) in zip(axes[0], ranks.items(), strict=True):
        r = np.asarray(r, dtype=float)
        image = ax.imshow(r, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        ax.set_title(f"{task}: {method}")
        _layout(ax, r.shape)
    fig.colorbar(image, ax=axes[0].tolist(), fraction=0.03, label="score rank (0 = least)")
    return _save(fig, path)


def layer_figure(methods: dict, path: Path) -> Path:
    """Per method, each task's share of contribution per layer (one line a task)."""
    fig, axes = plt.subplots(1, len(methods), figsize=(4.5 * len(methods), 3.2), squeeze=False)
    for ax, (method, rec) in zip(axes[0], methods.items(), strict=True):
        for task, share in rec["layer_share"].items():
            ax.plot(range(len(share)), share, "-o", markersize=3, label=task)
        ax.set_title(f"{method}: share of contribution")
        ax.set_xlabel("layer")
        ax.set_ylabel("share of the task's total")
        ax.set_xticks(range(len(share)))
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def _retention_axes(ax, title: str) -> None:
    ax.axhline(1, color="gray", lw=0.8, ls=":")
    ax.set_title(title)
    ax.set_xlabel("fraction of heads pruned")
    ax.set_ylabel("retention (1 = as unpruned)")
    ax.set_ylim(0, min(max(ax.get_ylim()[1], 1.05), 1.5))
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def retention_figure(tasks: list[str], retention: dict, path: Path) -> Path:
    """Every task's retention under HIB (solid) and random (dashed) pruning, on one plot."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, task in enumerate(tasks):
        for method, style in (("hib", "-o"), ("random", "--")):
            points = retention.get(task, {}).get(method)
            if points:
                x, y = zip(*points, strict=True)
                ax.plot(x, y, style, color=f"C{i}", markersize=3, label=f"{task} {method}")
    _retention_axes(ax, "each task's metric relative to unpruned")
    return _save(fig, path)


def joint_figure(joint: dict, path: Path) -> Path:
    """The combined score heatmap, and each task's retention: joint mask solid, own dashed."""
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(10, 3.8), width_ratios=(1, 1.6), layout="constrained"
    )
    scores = np.asarray(joint["scores"], dtype=float)
    image = left.imshow(scores, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    left.set_title(f"{joint['combine']} of the tasks' ranks")
    _layout(left, scores.shape)
    fig.colorbar(image, ax=left, fraction=0.046)
    for i, task in enumerate(joint["tasks"]):
        points = joint["points"][task]
        x = [p["ratio"] for p in points]
        for key, style, label in (("joint", "-o", "joint"), ("own", "--", "own")):
            y = [np.nan if p[f"{key}_retention"] is None else p[f"{key}_retention"] for p in points]
            right.plot(x, y, style, color=f"C{i}", markersize=3, label=f"{task} {label}")
    _retention_axes(right, f"joint vs each task's own {joint['method']} mask")
    return _save(fig, path)


# --- sections ----------------------------------------------------------------------------
def _method_section(method: str, rec: dict, out: Path) -> str:
    names = rec["tasks"]
    rows = [
        [a] + [f"{_num(v)} [{_num(lo)}, {_num(hi)}]" for v, (lo, hi) in zip(row, ci, strict=True)]
        for a, row, ci in zip(names, rec["spearman"], rec["spearman_ci"], strict=True)
    ]
    n_layers = len(next(iter(rec["layer_share"].values())))
    shares = [[t] + [_pct(v) for v in rec["layer_share"][t]] for t in names]
    only = "".join(
        f"<li>only {html.escape(t)}: {head_list(rec['only_top'][t])}</li>" for t in names
    )
    figure = rank_heatmaps_figure(rec["ranks"], method, out / rec["figure"])
    boot = rec["bootstrap"]
    return f"""<h2>{html.escape(method)} scores by task</h2>
<p>Spearman correlation of the head scores between tasks, with a {100 * boot["level"]:.0f} %
interval: the percentile interval over {boot["resamples"]} bootstrap resamples of the heads
(seed {boot["seed"]}).</p>
{_html_table(["task", *names], rows)}{_img(figure)}
<h3>Where each task's contribution sits</h3>
<p>Share of the task's total {html.escape(method)} score per layer (scores clipped at 0: a
head whose removal helps contributes nothing).</p>
{_html_table(["task", *(f"layer {i}" for i in range(n_layers))], shares)}
<h3>Top {100 * rec["top_share"]:.0f} % of heads</h3>
<ul><li>every task: {head_list(rec["shared_top"])}</li>{only}</ul>"""


def _cross_sections(record: dict, out: Path) -> str:
    methods = record["methods"]
    sections = [_method_section(m, rec, out) for m, rec in methods.items()]
    if methods:
        figure = layer_figure(methods, out / "cross_task_layers.png")
        sections.append(f"<h2>Share of contribution per layer, by task</h2>{_img(figure)}")
    curve_rows = [
        [t, html.escape(record["curves"][t]["metric"]["name"])]
        + [_pct(record["curves"][t][p]) for p in ("20", "40", "60")]
        for t in record["tasks"]
    ]
    retention = retention_figure(
        record["tasks"], record["retention"], out / "cross_task_retention.png"
    )
    links = "".join(
        f'<li><a href="{html.escape(record["reports"][t])}">{html.escape(t)}</a></li>'
        for t in record["tasks"]
    )
    return f"""{"".join(sections)}
<h2>Pruning on each task (test split, no retraining)</h2>
<p>Retention: the metric relative to unpruned, 1 = as unpruned (accuracy: value / unpruned;
WER: (1 - value) / (1 - unpruned), so the word accuracy kept); HIB solid, random dashed.</p>
{_img(retention)}
{_html_table(["task", "metric", "20 % pruned", "40 % pruned", "60 % pruned"], curve_rows)}
<h2>Each task's own report</h2><ul>{links}</ul>"""


def _joint_section(joint: dict, out: Path) -> str:
    rows = [
        [task, f"{100 * p['ratio']:.0f} %", _num(p["joint"], 4), _num(p["own"], 4)]
        + [_pct(p["kept_share"])]
        for task in joint["tasks"]
        for p in joint["points"][task]
    ]
    figure = joint_figure(joint, out / "joint.png")
    method, combine = html.escape(joint["method"]), html.escape(joint["combine"])
    return f"""<h2>One pruning for every task ({method}, {combine})</h2>
<p>Each task's {method} scores rank-normalised to [0, 1], combined over the tasks by a power
mean of the ranks (mean; power2, power4; max: a head stays if any task ranks it high), one
mask per pruned fraction. Kept share: the retention with the joint mask divided by the
retention with the task's own mask (100 % = the joint mask costs the task nothing).</p>
{_validation_table(joint)}
{_html_table(["task", "pruned", "joint", "own", "kept share"], rows)}{_img(figure)}"""


def _validation_table(joint: dict) -> str:
    """The combinations' kept shares on validation, where the combination was chosen there."""
    table = joint.get("validation")
    if not table:
        return ""
    ratios = ", ".join(f"{100 * r:.0f}" for r in joint["ratios"])
    rows = [
        [("\u2713 " if c == joint["combine"] else "") + c]  # _html_table escapes it
        + [_pct(rec["worst"]), _pct(rec["mean"])]
        + [" / ".join(_pct(v) for v in rec["kept_share"][t]) for t in joint["tasks"]]
        for c, rec in table.items()
    ]
    head = ["combination", "worst-served task", "mean", *joint["tasks"]]
    return f"""<p>The combination was chosen on the tasks' validation splits (the test split
below only reports it): the largest mean, over the pruned fractions ({ratios} %), of the
smallest kept share over the tasks.</p>
{_html_table(head, rows)}"""


def write_cross_report(out: Path) -> Path:
    """out/report.html from out/results.json ("cross_task" and/or "joint") and its figures."""
    out = Path(out)
    results = read_results(out)
    record, joint = results.get("cross_task"), results.get("joint")
    tasks = (record or joint or {}).get("tasks", [])
    body = f"""<!doctype html><html><head><meta charset="utf-8"><title>hib: tasks compared</title>
<style>{STYLE}</style></head><body>
<h1>Which heads matter for which task</h1>
<p>Upstream <b>{html.escape(upstream_label(results.get("upstream", {})))}</b>; tasks
{html.escape(", ".join(tasks))}.</p>
{_cross_sections(record, out) if record else ""}
{_joint_section(joint, out) if joint else ""}
</body></html>
"""
    return write_text(out / "report.html", body)
