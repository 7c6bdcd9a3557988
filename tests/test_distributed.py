"""Data parallelism (hib.distributed): two processes over gloo give one process's results.

One `accelerate launch` of two CPU processes (tests/distributed_job.py) scores a tiny KS run
with `python -m hib score --json` (hib, taylor, l0), trains it and a tiny IC run again with
`python -m hib train`, scores with every data-parallel method on uneven batches and runs a
comparison; each is checked against one process here.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import hib
import hib.distributed
from hib.checkpoint import MODEL_FILE
from hib.cli import main
from hib.compare import compare
from hib.config import load_config
from hib.distributed import LOCAL, World
from hib.methods import get_method
from hib.pipeline import Run
from hib.results import read_results
from hib.train import train
from tests.data.test_fsc import make_fsc
from tests.distributed_job import COMPARED, COMPARISON, SCORED, data_parallel, stand_in_options
from tests.test_train import overrides
from tests.test_train import setup as setup  # noqa: F401  (module fixture)

ROOT = Path(__file__).resolve().parents[1]
CLIPS = 20  # one batch of the fit size (32): 10 clips per process
TRAINING = ("data.augment=false",)  # augmentation draws per process (World.seed): not equal
SCORE_RTOL = 1e-4
TRAIN_ATOL = 1e-5  # the largest checkpoint difference measured: 6.6e-7 (float rounding)


def _launch(*args: str, timeout: float = 300) -> None:
    """`accelerate launch` two CPU processes of tests.distributed_job (the worktree's hib)."""
    with socket.socket() as s:  # a free port, so concurrent suites do not meet
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = Path(hib.__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{ROOT}", "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
    options = ["--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no"]
    options += ["--dynamo_backend", "no", "--main_process_port", str(port)]
    command = [*launcher, *options, "-m", "tests.distributed_job", *args]
    done = subprocess.run(
        command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "data-parallel over 2 processes" in done.stderr  # not one process run twice


@pytest.fixture(scope="module")
def launched(setup, tmp_path_factory):  # noqa: F811
    """(this process's folders, the processes' records, their folder): the KS run, trained
    and scored here and there, and a run of IC (whose head trains on features) trained both."""
    base = tmp_path_factory.mktemp("distributed")
    ic = [
        "task=ic",
        f"data.root={make_fsc(base / 'fsc')}",
        f"upstream.name={setup[1]}",
        *("train.epochs=2", "train.lr=0.01", "heads.stats_clips=4"),
        # clips of unequal length: batches of one, so that no part is padded otherwise than
        # the whole batch; 3 batches of features computed in parts, statistics with stand-ins
        *("train.batch_size=1", "eval.batch_size=1"),
    ]
    trainings = {"ks": overrides(setup, *TRAINING), "ic": ic}
    for name, args in trainings.items():
        train(load_config(None, args), base / name, progress=False)
    out = base / "launched"
    out.mkdir()
    _launch(str(base / "ks"), str(out), str(CLIPS), json.dumps(trainings))
    records = [json.loads((out / f"rank{r}.json").read_text()) for r in range(2)]
    return base, records, out


def _relative(got: torch.Tensor, want: torch.Tensor) -> float:
    return float(((got - want).abs() / want.abs().clamp(min=1e-12)).max())


@pytest.mark.slow
def test_two_processes_score_as_one(launched):
    base, (main_record, other), _ = launched
    run = Run(base / "ks", progress=False)
    for method, argv in SCORED.items():
        options = {"beta": float(argv[1])} if argv else {}
        want = run.compute_scores(method, clips=CLIPS, **options)
        out = main_record["stdout"][method]
        assert out.count("\n") == 1 and other["stdout"][method] == ""  # one JSON line, once
        printed = json.loads(out)
        assert printed["method"] == method
        assert _relative(torch.tensor(printed["scores"]), want) < SCORE_RTOL, method
    assert set(data_parallel()) == {"attattr", "fisher", "hib", "l0", "taylor", "taylor-norm"}
    for method in data_parallel():  # uneven batches, one process's part of the last empty
        want = run.compute_scores(method, **stand_in_options(method))
        for record in (main_record, other):  # every process returns the same scores
            got = torch.tensor(record["stand_in"][method])
            assert _relative(got, want) < SCORE_RTOL, method


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ks", "ic"])
def test_two_processes_train_the_same_checkpoint(launched, name):
    base, (main_record, other), out = launched
    one, two = load_file(str(base / name / MODEL_FILE)), load_file(str(out / name / MODEL_FILE))
    assert sorted(one) == sorted(two)
    for key in one:
        assert (one[key].double() - two[key].double()).abs().max() < TRAIN_ATOL, key
    assert main_record["stdout"][name].splitlines()[-1].startswith("test accuracy ")
    assert other["stdout"][name] == ""
    history = [read_results(d)["train"]["history"] for d in (base / name, out / name)]
    assert [h["val_accuracy"] for h in history[0]] == [h["val_accuracy"] for h in history[1]]
    for a, b in zip(*history, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5)


@pytest.mark.slow
def test_two_processes_share_the_comparison_grid(launched):
    base, records, _ = launched
    want = compare(Run(base / "ks", progress=False), COMPARED, **COMPARISON)
    for record in records:
        got = record["comparison"]
        assert sorted(got) == sorted(want)
        for name, row in want.items():
            assert {k: v for k, v in got[name].items() if k != "seconds"} == {
                k: v for k, v in row.items() if k != "seconds"
            }, name


def test_one_process_needs_no_launcher():
    assert hib.distributed.world() is LOCAL and LOCAL.size == 1
    assert get_method("ablation", world=World(1, 2)).world is LOCAL  # not data-parallel
    assert get_method("taylor", world=World(1, 2)).world.size == 2


def test_parts_cover_each_batch_once_and_stand_ins_count_nothing():
    class Item(list):
        part = None

    data, order = list(range(20)), list(range(10, 17))  # 7 items: batches of 5, 2; 3 processes
    parts = [list(World(r, 3).batches(data, order, 5, Item)) for r in range(3)]
    for b in range(2):
        batches = [p[b] for p in parts]
        assert [x.part.total for x in batches] == [[5, 2][b]] * 3
        counted = [x[: x.part.count] for x in batches]
        assert sum(counted, []) == order[5 * b : 5 * b + [5, 2][b]]
    stand_in = parts[2][1]
    assert stand_in.part.count == 0 and stand_in == [16]  # the batch's last item
    assert [World(r, 3).seed(7) == 7 for r in range(3)] == [True, False, False]


def test_a_one_process_command_refuses_several(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(hib.distributed, "world", lambda: World(0, 2))
    assert main(["prune", str(tmp_path), "--method", "hib"]) == 2
    err = capsys.readouterr().err
    assert (
        err == "error: hib prune runs in one process; under a launcher run train, score, compare\n"
    )
