"""hib compare-tasks: several runs' head scores side by side, Spearman between tasks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hib.cli import main
from hib.errors import HibError
from hib.io import write_json

UPSTREAM = {"name": "whisper-tiny.en", "n_layers": 2, "n_heads": 2}


def _run(folder: Path, task: str, scores: list, metric: str, upstream: dict = UPSTREAM) -> Path:
    higher = metric == "accuracy"
    curve = [{"ratio": r, "pruned": int(4 * r), metric: v} for r, v in ((0.2, 0.9), (0.4, 0.7))]
    write_json(
        folder / "results.json",
        {
            "schema": 1,
            "task": task,
            "upstream": upstream,
            "metric": {"name": metric, "higher_is_better": higher},
            "methods": {"hib": {"scores": scores, "curve": curve}},
        },
    )
    (folder / "report.html").write_text("<html></html>")
    return folder


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
    assert (
        record["curves"]["asr"]["metric"]["name"] == "wer" and record["curves"]["ks"]["40"] == 0.7
    )
    report = (out / "report.html").read_text()
    assert "data:image/png;base64," in report and 'href="../ks/report.html"' in report
    assert "ablation" not in record["methods"]  # no run has ablation scores
    assert "Spearman" in capsys.readouterr().out


def test_runs_on_different_upstreams_are_refused(tmp_path: Path) -> None:
    a = _run(tmp_path / "a", "ks", [[1, 2], [3, 4]], "accuracy")
    other = {**UPSTREAM, "name": "whisper-base"}
    b = _run(tmp_path / "b", "asr", [[1, 2], [3, 4]], "wer", other)
    with pytest.raises(HibError, match="different upstreams"):
        from hib.cross_task import compare_tasks

        compare_tasks([a, b], tmp_path / "out")
