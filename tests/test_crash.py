"""kill -9 anywhere: train, score, prune and compare killed at seeded points, then run again.

For each command a reference chain runs uninterrupted on a tiny config. Each trial starts from
the reference folder as it was before the command, SIGKILLs the command at a seeded point (the
n-th atomic rename with its temporary half written, just after the n-th rename, or after a
random delay), runs the same command again (`--resume` for a training that had started), and
compares with the reference: same files, same results.json (timings aside), same tensors, no
temporary left, every JSON parses, the manifest matches every tensor file.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from pathlib import Path

import pytest
import torch

from hib.io import read_tensors
from hib.rundir import LOCK_FILE, MANIFEST_FILE, verified
from tests import procs
from tests.test_train import setup as setup  # noqa: F401  (module fixture)

SEED = 13
KILLS_PER_COMMAND = 3
COMMANDS = ("train", "score", "prune", "compare")
TRIALS = [(c, k) for c in COMMANDS for k in range(KILLS_PER_COMMAND)]


def _argv(command: str, run: Path, setup, resume: bool = False) -> list[str]:  # noqa: F811
    root, upstream = setup
    if command == "train":
        return [
            "train",
            "--out",
            str(run),
            *(["--resume"] if resume else []),
            f"data.root={root}",
            f"upstream.name={upstream}",
            "train.batch_size=8",
            "train.epochs=2",
            "train.lr=0.01",
            "heads.stats_clips=16",
        ]
    if command == "score":
        return ["score", str(run), "--method", "taylor", "--clips", "16"]
    if command == "prune":
        return ["prune", str(run), "--method", "taylor", "--ratios", "0,0.5,1"]
    return ["compare", str(run), "--methods", "random", "--seeds", "1", "--clips", "8"]


@pytest.fixture(scope="module")
def reference(setup, tmp_path_factory):  # noqa: F811
    """{command: (folder before it, folder after it, renames it made, seconds it took)}."""
    base = tmp_path_factory.mktemp("reference")
    run, chain = base / "run", {}
    for i, command in enumerate(COMMANDS):
        before = shutil.copytree(run, base / f"before-{command}") if i else base / "empty"
        start = time.perf_counter()
        code, err = procs.run(_argv(command, run, setup), base / f"work-{command}")
        assert code == 0, err
        seconds = time.perf_counter() - start
        after = shutil.copytree(run, base / f"after-{command}")
        chain[command] = (before, after, procs.renames(base / f"work-{command}"), seconds)
    return chain


def _without_timings(obj):
    if isinstance(obj, dict):
        return {k: _without_timings(v) for k, v in obj.items() if k != "seconds"}
    if isinstance(obj, list):
        return [_without_timings(v) for v in obj]
    return obj


def _assert_same_run(got: Path, want: Path) -> None:
    files = {p.relative_to(got).as_posix() for p in got.rglob("*") if p.is_file()}
    assert files == {p.relative_to(want).as_posix() for p in want.rglob("*") if p.is_file()}
    assert not [f for f in files if f.endswith(".tmp")]  # no temporary left behind
    for name in files:
        if name.endswith(".json"):
            data = json.loads((got / name).read_text())  # every JSON file parses
            if name == "results.json":
                expected = json.loads((want / name).read_text())
                assert _without_timings(data) == _without_timings(expected)
        elif name.endswith(".safetensors"):
            verified(got, name)  # the manifest matches what is on disk
            a, b = read_tensors(got / name)[0], read_tensors(want / name)[0]
            assert a.keys() == b.keys(), name
            for key in a:
                assert torch.equal(a[key], b[key]), f"{name}: {key}"
        elif name != LOCK_FILE:
            assert (got / name).read_bytes() == (want / name).read_bytes(), name
    assert not json.loads((got / MANIFEST_FILE).read_text())["pending"]


def _kill_point(command: str, k: int, renames: list[str], seconds: float):
    """The k-th seeded kill point of `command`: a rename (mid or after) or a delay."""
    rng = random.Random(f"{SEED}-{command}-{k}")
    if k == KILLS_PER_COMMAND - 1:
        return None, rng.uniform(0.05, seconds)
    return procs.KillAt(rng.randint(1, len(renames)), ("mid", "after")[k % 2]), None


@pytest.mark.slow
@pytest.mark.parametrize(("command", "k"), TRIALS, ids=[f"{c}-{k}" for c, k in TRIALS])
def test_killed_then_rerun_equals_uninterrupted(reference, setup, tmp_path, command, k):  # noqa: F811
    before, after, renames, seconds = reference[command]
    run = tmp_path / "run"
    if before.is_dir():
        shutil.copytree(before, run)
    kill, delay = _kill_point(command, k, renames, seconds)
    process = procs.start(_argv(command, run, setup), tmp_path / "killed", kill=kill)
    if delay is not None:
        process.join(delay)
        process.kill()
    process.join()
    killed = tmp_path / "killed" / "stderr.txt"
    assert process.exitcode in (-9, 0), killed.read_text()  # killed, or done within the delay
    resume = command == "train" and (run / "config.yaml").is_file()
    code, err = procs.run(_argv(command, run, setup, resume), tmp_path / "again")
    assert code == 0, err
    _assert_same_run(run, after)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "limit"), [("score", 64), ("prune", 1024)], ids=["score-64B", "prune-1KiB"]
)
def test_a_failed_write_keeps_the_previous_files(reference, setup, tmp_path, command, limit):  # noqa: F811
    """No space (a file-size limit): one line, exit 2, every file as it was, no temporary."""
    run = shutil.copytree(reference["compare"][1], tmp_path / "run")
    snapshot = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    argv = _argv(command, run, setup)
    if command == "prune":
        argv[-1] = "0,1"  # a different curve, so results.json would change
    code, err = procs.run(argv, tmp_path / "work", fsize=limit)
    assert code == 2, err
    lines = procs.error_lines(err)
    assert len(lines) == 1 and lines[0].startswith("error: cannot write "), err
    assert lines[0].endswith(": File too large"), err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == snapshot
