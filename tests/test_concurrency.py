"""Two writers on one run folder: both keep their results, and the second one says it waits."""

from __future__ import annotations

import json
import threading
import time

import pytest

import hib.rundir
from hib.results import read_results, update_results
from hib.rundir import run_lock
from hib.train import train
from tests import procs
from tests.test_train import _config
from tests.test_train import setup as setup  # noqa: F401  (module fixture)

REPETITIONS = 20
METHODS = ["magnitude", "random"]  # sorted


@pytest.fixture(scope="module")
def trained(setup, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("concurrency") / "run"
    train(_config(setup, "train.epochs=1"), out, progress=False)
    return out


@pytest.mark.slow
def test_two_processes_scoring_at_once_both_land_every_time(trained):
    barrier = procs.CTX.Barrier(len(METHODS) + 1, timeout=120)
    workers = procs.score_workers(trained, METHODS, REPETITIONS, barrier)
    try:
        for _ in range(REPETITIONS):
            results = read_results(trained)
            results.pop("methods", None)
            (trained / "results.json").write_text(json.dumps(results))
            barrier.wait()  # go
            barrier.wait()  # both done
            assert sorted(read_results(trained)["methods"]) == METHODS
    except BaseException:
        barrier.abort()  # a failed check must not leave the workers waiting
        raise
    finally:
        for worker in workers:
            worker.join(timeout=60)
    assert [w.exitcode for w in workers] == [0, 0]


def test_a_second_writer_waits_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(hib.rundir, "WAIT_NOTICE_S", 0.1)
    update_results(tmp_path, {"first": 1})
    writer = threading.Thread(target=update_results, args=(tmp_path, {"second": 2}))
    with run_lock(tmp_path):
        writer.start()
        time.sleep(0.5)
        assert writer.is_alive()  # waiting for the lock, not writing over it
    writer.join(timeout=10)
    assert "waiting for another hib command writing to" in capsys.readouterr().err
    assert {"first", "second"} <= set(read_results(tmp_path))
