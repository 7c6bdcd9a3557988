"""hib compare-tasks: several runs' head scores side by side, Spearman between tasks (with a
bootstrap interval), each task's share per layer, retention curves, shared and own top heads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from hib.cli import main
from hib.cross_task import compare_tasks
from hib.cross_task.stats import layer_share, retention_curve, spearman_ci
from hib.errors import HibError
from hib.io import write_json
from hib.tasks.base import Metric

UPSTREAM = {"name": "whisper-tiny.en", "n_layers": 2, "n_heads": 2}


def _run(
    folder: Path,
    task: str,
    scores: list,
    metric: str,
    upstream: dict = UPSTREAM,
    curve: tuple = ((0.2, 0.9), (0.4, 0.7)),
    **extra: dict,
) -> Path:
    """A hand-written run folder: hib scores and curve, plus `extra` methods' records."""
    higher = metric == "accuracy"
    points = [{"ratio": r, "pruned": int(4 * r), metric: v} for r, v in curve]
    write_json(
        folder / "results.json",
        {
            "schema": 1,
            "task": task,
            "upstream": upstream,
            "metric": {"name": metric, "higher_is_better": higher},
            "methods": {"hib": {"scores": scores, "curve": points}, **extra},
        },
    )
    (folder / "report.html").write_text("<html></html>")
    return folder


def _close(points: list, expected: list) -> bool:
    return np.shape(points) == np.shape(expected) and np.allclose(points, expected)


def test_spearman_matrix_heatmaps_and_links(tmp_path: Path, capsys) -> None:
    ks = _run(tmp_path / "ks", "ks", [[1, 2], [3, 4]], "accuracy")
    asr = _run(tmp_path / "asr", "asr", [[4, 3], [2, 1]], "wer")
    same = _run(tmp_path / "ks2", "ks2", [[10, 20], [30, 40]], "accuracy")
    out = tmp_path / "out"
    assert main(["compare-tasks", str(ks), str(asr), str(same), "--out", str(out)]) == 0
    record = json.loads((out / "results.json").read_text())["cross_task"]
    matrix = record["methods"]["hib"]["spearman"]
    assert matrix[0][1] == pytest.approx(-1.0) and matrix[0][2] == pytest.approx(1.0)
    assert matrix[1][1] == pytest.approx(1.0)
    assert record["methods"]["hib"]["spearman_ci"][0][1] == pytest.approx([-1.0, -1.0])
    assert (
        record["curves"]["asr"]["metric"]["name"] == "wer" and record["curves"]["ks"]["40"] == 0.7
    )
    report = (out / "report.html").read_text()
    assert "data:image/png;base64," in report and 'href="../ks/report.html"' in report
    assert "-1.00 [-1.00, -1.00]" in report
    assert "ablation" not in record["methods"]  # no run has ablation scores
    assert "Spearman" in capsys.readouterr().out


def test_the_interval_holds_the_estimate_and_is_the_bootstrap_of_heads() -> None:
    rng = np.random.default_rng(1)
    base = rng.standard_normal((4, 6))
    scores = [base, base + rng.standard_normal((4, 6)), rng.standard_normal((4, 6))]
    ci = spearman_ci(scores, resamples=200, seed=3)
    for i, a in enumerate(scores):
        assert ci[i][i] == pytest.approx([1.0, 1.0])
        for j, b in enumerate(scores):
            rho = spearmanr(a.ravel(), b.ravel()).statistic
            lo, hi = ci[i][j]
            assert -1 <= lo <= rho <= hi <= 1 and ci[j][i] == pytest.approx([lo, hi])
    assert ci[0][1][1] - ci[0][1][0] > 0.05  # a noisy correlation has a real interval
    # the same draws, one resample at a time with scipy
    idx = np.random.default_rng(3).integers(0, 24, size=(200, 24))
    a, b = scores[0].ravel(), scores[1].ravel()
    rhos = [spearmanr(a[i], b[i]).statistic for i in idx]
    lo, hi = np.nanpercentile(rhos, [2.5, 97.5])
    assert ci[0][1] == pytest.approx([min(lo, spearmanr(a, b).statistic), hi])


def test_layer_shares_sum_to_one_and_follow_the_scores(tmp_path: Path) -> None:
    assert layer_share(np.array([[0, 0], [1, 3]])) == pytest.approx([0, 1])
    assert layer_share(np.array([[-1, 1], [1, 2]])) == pytest.approx([0.25, 0.75])  # clipped
    assert layer_share(np.array([[-1, -2], [0, -3]])) == pytest.approx([0.5, 0.5])  # none > 0
    ks = _run(tmp_path / "ks", "ks", [[1, 2], [3, 4]], "accuracy")
    asr = _run(tmp_path / "asr", "asr", [[5, 5], [0, 0]], "wer")
    record = compare_tasks([ks, asr], tmp_path / "out")
    shares = record["methods"]["hib"]["layer_share"]
    assert all(sum(s) == pytest.approx(1) for s in shares.values())
    assert shares["ks"] == pytest.approx([0.3, 0.7]) and shares["asr"] == pytest.approx([1, 0])
    assert "layer 1" in (tmp_path / "out" / "report.html").read_text()


def test_retention_of_a_rising_wer_falls(tmp_path: Path) -> None:
    wer = Metric("wer", higher_is_better=False)
    curve = [{"ratio": r, "pruned": 0, "wer": v} for r, v in ((0, 0.1), (0.2, 0.2), (0.4, 1.3))]
    assert _close(retention_curve(curve, 0.1, wer), [[0, 1], [0.2, 0.8 / 0.9], [0.4, 0]])
    accuracy = Metric("accuracy", higher_is_better=True)
    curve = [{"ratio": r, "pruned": 0, "accuracy": v} for r, v in ((0, 0.8), (0.5, 0.2))]
    assert _close(retention_curve(curve, 0.8, accuracy), [[0, 1], [0.5, 0.25]])

    def with_unpruned(folder: Path, name: str, value: float) -> Path:
        results = json.loads((folder / "results.json").read_text())
        write_json(folder / "results.json", {**results, name: value})
        return folder

    random = {"curve": [{"ratio": 0.2, "pruned": 1, "wer": 0.3}]}
    asr = _run(
        tmp_path / "asr",
        "asr",
        [[1, 2], [3, 4]],
        "wer",
        curve=((0.2, 0.15), (0.4, 0.4)),
        random=random,
    )
    ks = _run(tmp_path / "ks", "ks", [[1, 2], [3, 4]], "accuracy")
    record = compare_tasks(
        [with_unpruned(asr, "wer", 0.1), with_unpruned(ks, "accuracy", 0.9)], tmp_path / "out"
    )
    hib = record["retention"]["asr"]["hib"]
    assert hib[0][1] > hib[1][1] and hib[0][1] == pytest.approx(0.85 / 0.9)
    assert _close(record["retention"]["asr"]["random"], [[0.2, 0.7 / 0.9]])
    assert list(record["retention"]["ks"]) == ["hib"]  # no random curve
    assert _close(record["retention"]["ks"]["hib"], [[0.2, 1.0], [0.4, 0.7 / 0.9]])


def test_shared_and_only_top_heads(tmp_path: Path) -> None:
    upstream = {**UPSTREAM, "n_layers": 2, "n_heads": 4}  # 8 heads: a top quarter of 2
    a = _run(tmp_path / "a", "a", [[9, 1, 2, 3], [4, 5, 6, 8]], "accuracy", upstream)
    b = _run(tmp_path / "b", "b", [[9, 8, 2, 3], [4, 5, 6, 1]], "accuracy", upstream)
    c = _run(tmp_path / "c", "c", [[9, 1, 2, 3], [4, 5, 8, 6]], "wer", upstream)
    ablation = {"scores": [[0, 0, 0, 0], [0, 0, 0, 1]]}
    d = _run(tmp_path / "d", "d", [[9, 1, 2, 3], [4, 5, 8, 6]], "wer", upstream, ablation=ablation)
    record = compare_tasks([a, b, c], tmp_path / "out")
    hib = record["methods"]["hib"]
    assert hib["shared_top"] == [[0, 0]]
    assert hib["only_top"] == {"a": [[1, 3]], "b": [[0, 1]], "c": [[1, 2]]}
    report = (tmp_path / "out" / "report.html").read_text()
    assert "every task: L0.H0" in report and "only b: L0.H1" in report
    # rerun into the same folder: the record is replaced, not merged with the last one's tasks
    again = _run(
        tmp_path / "a2", "a", [[9, 1, 2, 3], [4, 5, 6, 8]], "accuracy", upstream, ablation=ablation
    )
    record = compare_tasks([again, d], tmp_path / "out")
    stored = json.loads((tmp_path / "out" / "results.json").read_text())["cross_task"]
    assert stored["tasks"] == ["a", "d"] and set(stored["methods"]["hib"]["only_top"]) == {"a", "d"}
    assert stored["methods"]["ablation"]["tasks"] == ["a", "d"]


def test_scores_of_the_comparison_count_where_none_were_stored(tmp_path: Path) -> None:
    stored = {"ablation": {"scores": [[1, 2], [3, 4]]}}
    a = _run(tmp_path / "a", "a", [[1, 2], [3, 4]], "accuracy", ablation=stored["ablation"])
    b = _run(tmp_path / "b", "b", [[4, 3], [2, 1]], "accuracy")
    results = json.loads((b / "results.json").read_text())
    results["comparison"] = {"methods": {"ablation": {"scores": [[4, 3], [2, 1]]}}}
    write_json(b / "results.json", results)
    record = compare_tasks([a, b], tmp_path / "out")
    assert record["methods"]["ablation"]["tasks"] == ["a", "b"]
    assert record["methods"]["ablation"]["spearman"][0][1] == pytest.approx(-1.0)


def test_runs_on_different_upstreams_are_refused(tmp_path: Path) -> None:
    a = _run(tmp_path / "a", "ks", [[1, 2], [3, 4]], "accuracy")
    other = {**UPSTREAM, "name": "whisper-base"}
    b = _run(tmp_path / "b", "asr", [[1, 2], [3, 4]], "wer", other)
    with pytest.raises(HibError, match="different upstreams"):
        compare_tasks([a, b], tmp_path / "out")
