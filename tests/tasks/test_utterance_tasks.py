"""SID and IC through the Task interface on tiny fixtures in the real layouts (VoxCeleb1, Fluent
Speech Commands): a run trains on features computed once (hib.frozen), every method of the
shared table scores, curves and `hib eval` work; and the feature path equals the forward."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hib.cli import main
from hib.downstream import UtteranceClassifier
from hib.evaluate import evaluate
from hib.frozen import ClipFeatures
from hib.pipeline import Run
from hib.tasks.ic import SlotClassifier
from tests.conftest import make_tiny_upstream
from tests.data.test_fsc import make_fsc
from tests.data.test_voxceleb import make_voxceleb
from tests.methods.test_methods import TABLE

FIXTURES = {"sid": make_voxceleb, "ic": make_fsc}


@pytest.fixture(scope="module", params=sorted(FIXTURES))
def run_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    task = request.param
    tmp = tmp_path_factory.mktemp(task)
    root = FIXTURES[task](tmp / "data")
    make_tiny_upstream("whisper", tmp / "up")
    args = [
        "train",
        f"task={task}",
        f"data.root={root}",
        f"upstream.name={tmp / 'up' / 'tiny-whisper'}",
    ]
    args += ["train.epochs=3", "train.batch_size=2", "train.lr=0.01", "heads.stats_clips=4"]
    assert main([*args, "--out", str(tmp / "run")]) == 0
    return tmp / "run"


def test_a_run_trains_and_records_the_task(run_dir: Path) -> None:
    results = json.loads((run_dir / "results.json").read_text())
    task = results["task"]
    assert results["metric"] == {"name": "accuracy", "higher_is_better": True}
    assert 0 <= results["accuracy"] <= 1 and len(results["train"]["history"]) == 3
    assert ("per_slot" in results) == (task == "ic") and ("per_class" in results) == (task == "sid")
    run = Run(run_dir, progress=False)
    assert isinstance(run.model, SlotClassifier) == (task == "ic")


@pytest.mark.parametrize("case", TABLE, ids=str)
def test_every_method_of_the_table_scores(run_dir: Path, case) -> None:
    run = Run(run_dir, progress=False)
    scores = run.compute_scores(case.name, seed=7, **{**case.fast, "batch_size": 2})
    assert scores.shape == run.model.heads().shape and torch.isfinite(scores).all()
    if case.data_driven:
        assert scores.abs().sum() > 0


def test_curve_and_eval_json(run_dir: Path, capsys) -> None:
    run = Run(run_dir, progress=False)
    run.score("magnitude")
    record = run.prune("magnitude", [0.0, 0.5, 1.0])
    results = json.loads((run_dir / "results.json").read_text())
    assert record["curve"][0]["accuracy"] == pytest.approx(results["accuracy"])
    root = results["data"]["root"]
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--data", root, "--split", "test", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["accuracy"] == pytest.approx(results["accuracy"]) and out["n"] >= 1


@pytest.mark.parametrize("slots", [False, True])
def test_features_give_the_forwards_outputs_and_metric(tmp_path: Path, slots: bool) -> None:
    """Padded clips of unequal length: the head from pooled features = the head from states."""
    torch.manual_seed(0)
    upstream = make_tiny_upstream("whisper", tmp_path)
    model = (
        SlotClassifier.build(upstream, {"a": ["x", "y"], "b": ["u", "v", "w"]})
        if slots
        else UtteranceClassifier.build(upstream, 3)
    )
    lengths = (16000, 9000, 4000, 12000, 7000)
    targets = [torch.tensor([i % 2, i % 3]) if slots else i % 3 for i in range(len(lengths))]
    clips = [(0.1 * torch.randn(n), t) for n, t in zip(lengths, targets, strict=True)]
    batch = model.collate(clips)
    hidden = model.upstream(batch.waves).hidden_states
    direct = model.outputs(hidden, batch)
    pooled = model.outputs_of_features(model.features(hidden, batch), batch)
    torch.testing.assert_close(pooled, direct, rtol=1e-5, atol=1e-6)
    expected = evaluate(model, clips, batch_size=2)
    got = ClipFeatures.of(model, clips, 2, progress=False, desc="").evaluate(model, 2)
    assert got.value == expected.value and got.n == expected.n
