"""hib prune DIR --tasks a,b: one keep-mask for several tasks (hib.joint), from hand-made
scores and on two tiny trained runs (SID, IC) on one tiny Whisper."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from hib.cli import main
from hib.errors import ConfigError
from hib.io import write_json
from hib.joint import (
    POWERS,
    best_combine,
    combine_scores,
    joint_prune,
    joint_ranking,
    kept_share,
    validation_table,
)
from hib.pipeline import Run
from hib.prune import prune_mask
from hib.results import update_results
from hib.rundir import save_run_tensors
from tests.conftest import make_tiny_upstream
from tests.data.test_fsc import make_fsc
from tests.data.test_voxceleb import make_voxceleb

# three tasks on 2 x 3 heads; each task's top head is one the other two rank lowest
TOP = {"a": (0, 0), "b": (0, 1), "c": (1, 2)}
SCORES = {
    "a": np.array([[9.0, 0.0, 0.1], [5.0, 6.0, 0.2]]),  # bits
    "b": np.array([[0.0, 0.9, 0.01], [0.5, 0.6, 0.02]]),  # accuracy drops
    "c": np.array([[0.0, 0.1, 0.2], [3.0, 4.0, 99.0]]),
}


def _kept(mask: torch.Tensor) -> set[tuple[int, int]]:
    return {tuple(h) for h in torch.nonzero(mask).tolist()}


def test_max_keeps_every_tasks_top_head_and_mean_does_not() -> None:
    scores = list(SCORES.values())
    keep_three = prune_mask(joint_ranking(scores, "max"), 3)
    assert _kept(keep_three) == set(TOP.values())
    mean = _kept(prune_mask(joint_ranking(scores, "mean"), 3))
    assert not set(TOP.values()) <= mean  # the mean gives up a head only one task needs
    assert combine_scores(scores, "max")[0, 0] == 1.0  # task a's top head, as a's rank


def test_ranks_not_units_and_ties_broken_by_the_mean() -> None:
    scaled = [SCORES["a"] * 1000, SCORES["b"], SCORES["c"] / 7]
    torch.testing.assert_close(joint_ranking(scaled), joint_ranking(list(SCORES.values())))
    # heads (0, 0) and (0, 1) both have a max rank of 1; (0, 1) is ranked high by both tasks
    tied = [np.array([[3.0, 2.0], [1.0, 0.0]]), np.array([[0.0, 3.0], [2.0, 1.0]])]
    ranking = joint_ranking(tied, "max")
    assert ranking[0, 1] > ranking[0, 0] and len(set(ranking.flatten().tolist())) == 4
    assert _kept(prune_mask(ranking, 3)) == {(0, 1)}
    with pytest.raises(ConfigError, match="combine 'median'"):
        combine_scores(list(SCORES.values()), "median")
    with pytest.raises(ConfigError, match="chosen on validation"):
        combine_scores(list(SCORES.values()), "validated")


def test_power_means_run_from_the_mean_to_the_max() -> None:
    grids = list(np.random.default_rng(0).normal(size=(3, 4, 6)))
    combined = [combine_scores(grids, c) for c in ("mean", "power2", "power4", "max")]
    for lower, higher in itertools.pairwise(combined):
        assert (lower <= higher + 1e-12).all() and (lower < higher).any()
    assert combined[0] == pytest.approx(np.mean([combine_scores([g], "mean") for g in grids], 0))


def test_best_combine_serves_the_worst_served_task() -> None:
    table = {
        "max": {"worst": 0.80, "mean": 0.95},
        "power4": {"worst": 0.90, "mean": 0.91},
        "power2": {"worst": 0.90, "mean": 0.93},
        "mean": {"worst": 0.85, "mean": 0.99},
    }
    assert best_combine(table) == "power2"  # worst first, then the mean
    table["power4"]["mean"] = 0.93
    assert best_combine(table) == "power4"  # then the order of POWERS, from max down


def test_kept_share() -> None:
    assert kept_share(0.45, 0.9) == pytest.approx(0.5) and kept_share(None, None, same=True) == 1
    assert kept_share(0.5, 0.0) is None and kept_share(None, 0.8) is None


def _fake_run(folder: Path, task: str, upstream: str = "tiny", methods: tuple = ("hib",)) -> Path:
    """results.json alone: enough for the checks made before any model is loaded."""
    write_json(
        folder / "results.json",
        {
            "schema": 1,
            "task": task,
            "upstream": {"name": upstream, "n_layers": 2, "n_heads": 2},
            "metric": {"name": "accuracy", "higher_is_better": True},
            "methods": {m: {"scores": [[1, 2], [3, 4]]} for m in methods},
        },
    )
    return folder


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--tasks", "ks,asr,ic"],
            r"/ic: no run folder for task ic \(run folders in \S+: asr, ks, sid\)$",
        ),
        (["--tasks", "ks"], "name at least 2 different tasks"),
        (["--tasks", "ks,asr,ks"], "name at least 2 different tasks"),
        (["--tasks", "ks,sid"], "different upstreams"),
        (["--tasks", "ks,asr", "--method", "ablation"], r"`hib score \S+/asr --method ablation`"),
        (["--tasks", "ks,asr", "--fill", "zero"], "--fill prunes one run"),
        (["--tasks", "ks,asr", "--ratios", "0.2,1.5"], "ratio 1.5"),
        (["--combine", "max"], "--combine is for pruning several tasks"),
    ],
)
def test_bad_input_is_one_line(tmp_path: Path, capsys, args: list, message: str) -> None:
    _fake_run(tmp_path / "ks", "ks", methods=("hib", "ablation"))
    _fake_run(tmp_path / "asr", "asr")
    _fake_run(tmp_path / "sid", "sid", upstream="other")
    assert main(["prune", str(tmp_path), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert re.search(message, err.strip())


# hand-made hib scores of the tiny runs: sid needs layer 0, ic layer 1 (2 x 4 heads)
HAND = {"sid": [[8.0, 7, 6, 5], [4, 3, 2, 1]], "ic": [[1.0, 2, 3, 4], [5, 6, 7, 8]]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DIR/sid and DIR/ic: tiny trained runs on one tiny whisper, scored by magnitude, and
    hand-made "hib" scores stored as `Run.score` stores them."""
    tmp = tmp_path_factory.mktemp("joint")
    make_tiny_upstream("whisper", tmp / "up")
    for task, make in (("sid", make_voxceleb), ("ic", make_fsc)):
        args = ["train", f"task={task}", f"data.root={make(tmp / task / 'data')}"]
        args += [f"upstream.name={tmp / 'up' / 'tiny-whisper'}", "train.epochs=3"]
        args += ["train.batch_size=2", "train.lr=0.01", "heads.stats_clips=4"]
        assert main([*args, "--out", str(tmp / "runs" / task)]) == 0
        Run(tmp / "runs" / task, progress=False).score("magnitude")
        scores = torch.tensor(HAND[task])
        save_run_tensors(tmp / "runs" / task, "scores/hib.safetensors", {"scores": scores})
        update_results(tmp / "runs" / task, {"methods": {"hib": {"scores": HAND[task]}}})
    return tmp / "runs"


def test_joint_prune_on_two_tiny_runs(runs: Path, capsys) -> None:
    ratios = [0.0, 0.25, 0.5]
    capsys.readouterr()
    assert main(["prune", str(runs), "--tasks", "sid,ic", "--method", "magnitude",
                 "--ratios", "0,0.25,0.5"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "kept share" in printed and "ic" in printed
    joint = json.loads((runs / "results.json").read_text())["joint"]
    assert joint["tasks"] == ["sid", "ic"] and set(joint["validation"]) == set(POWERS)
    assert joint["combine"] == best_combine(joint["validation"])  # "validated", the default
    assert "chosen on validation" in printed
    assert np.shape(joint["scores"]) == (2, 4)
    for task in ("sid", "ic"):
        results = json.loads((runs / task / "results.json").read_text())
        points = joint["points"][task]
        assert [p["ratio"] for p in points] == ratios
        assert [p["pruned"] for p in points] == [0, 2, 4]
        first = points[0]
        assert first["joint"] == first["own"] == joint["unpruned"][task]
        assert first["joint"] == pytest.approx(results["accuracy"]) and first["kept_share"] == 1
        # the own column is the task's own magnitude mask, as `hib eval --method` applies it
        run = Run(runs / task, progress=False)
        assert points[2]["own"] == run.test_metric(run.mask_for("magnitude", 0.5))
    report = (runs / "report.html").read_text()
    assert "One pruning for every task" in report and "data:image/png;base64," in report


def test_kept_share_is_joint_over_own_retention(runs: Path, monkeypatch) -> None:
    """A stand-in metric (0.8 x the share of the task's needed heads kept), so the joint and
    own masks differ and every number can be worked out by hand."""
    needed = {task: torch.tensor(scores) > 4.5 for task, scores in HAND.items()}

    def metric(run: Run, split: str, mask: torch.Tensor, compensate: None = None) -> float:
        return 0.8 * float(mask[needed[run.task.name]].float().mean())

    monkeypatch.setattr(Run, "split_metric", metric)
    tasks = {"sid": runs / "sid", "ic": runs / "ic"}
    record = joint_prune(tasks, runs / "out", "hib", [0, 0.5], "max")
    assert "validation" not in record  # a combination given is not chosen again
    # max of ranks keeps (0, 0) and (1, 3) (rank 1), then (0, 1) and (1, 2) (6/7)
    assert np.array(record["scores"]) == pytest.approx(np.array([[7, 6, 5, 4], [4, 5, 6, 7]]) / 7)
    for task in ("sid", "ic"):
        start, half = record["points"][task]
        assert start["joint"] == start["own"] == 0.8 and start["kept_share"] == 1
        assert half["own"] == 0.8 and half["joint"] == pytest.approx(0.4)
        assert half["joint_retention"] == pytest.approx(0.5)
        assert half["kept_share"] == pytest.approx(0.5)
    mean = joint_prune([runs / "sid", runs / "ic"], runs / "out", "hib", [0.5], "mean")
    assert mean["tasks"] == ["sid", "ic"] and mean["combine"] == "mean"
    stored = json.loads((runs / "out" / "results.json").read_text())["joint"]
    assert stored["ratios"] == [0.5] and stored["combine"] == "mean"  # replaced, not merged


def test_the_combination_is_chosen_on_validation_only(runs: Path, monkeypatch) -> None:
    """Validation says: sid needs (0, 0) alone, ic needs all of layer 1; test says nothing
    (a constant), so only a choice made on validation can come out of it."""
    needed = {"sid": torch.zeros(2, 4, dtype=torch.bool), "ic": torch.zeros(2, 4, dtype=torch.bool)}
    needed["sid"][0, 0], needed["ic"][1] = True, True
    splits: set[str] = set()

    def metric(run: Run, split: str, mask: torch.Tensor, compensate: None = None) -> float:
        splits.add(split)
        return 0.8 * float(mask[needed[run.task.name]].float().mean()) if split != "test" else 0.5

    monkeypatch.setattr(Run, "split_metric", metric)
    tasks = {name: Run(runs / name, progress=False) for name in ("sid", "ic")}
    grids = [np.array(HAND["sid"]), np.array(HAND["ic"])]
    table = validation_table(tasks, "hib", grids, [0.25, 0.5])
    assert splits == {"validation"} and set(table) == set(POWERS)
    for rec in table.values():
        shares = rec["kept_share"]
        assert rec["worst"] == pytest.approx(np.mean(np.minimum(shares["sid"], shares["ic"])))
    dirs = {name: runs / name for name in tasks}
    record = joint_prune(dirs, runs / "out2", "hib", [0.25, 0.5])
    assert record["combine"] == best_combine(record["validation"])
    assert all(p["joint"] == 0.5 for p in record["points"]["sid"])  # test only reports
