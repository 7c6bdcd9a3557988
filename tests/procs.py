"""`hib` commands in child processes that can be killed: for the kill -9 and concurrency tests.

Children are forked from a forkserver that has imported hib (and torch) once, so each run
costs its own work instead of 8 s of imports; the server itself never runs torch, so forking
it is safe. A child counts the atomic renames it makes (`os.replace`), logs each target, and
can SIGKILL itself at the n-th one, either with the temporary file cut to half its length
(killed mid-write) or just after the rename (killed between two writes).
"""

from __future__ import annotations

import io
import multiprocessing
import os
import re
import resource
import signal
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

PROGRESS = re.compile(r"\|.*\| *\d+/\d+ \[")  # a tqdm bar (transformers' "Loading weights")
CTX = multiprocessing.get_context("forkserver")
CTX.set_forkserver_preload(["hib.cli", "hib.train", "hib.pipeline", "hib.compare"])


@dataclass(frozen=True)
class KillAt:
    """Kill at the n-th rename (1-based): 'mid' = the temporary half written, 'after' = done."""

    n: int
    phase: str


def _child(
    argv: list[str], log: str, kill: KillAt | None, fsize: int | None, err: str, go=None
) -> None:
    real_replace, count = os.replace, 0

    def replace(src, dst, **kwargs):
        nonlocal count
        count += 1
        with open(log, "a") as f:
            f.write(f"{dst}\n")
        if kill and count == kill.n and kill.phase == "mid":
            with open(src, "r+b") as f:
                f.truncate(os.path.getsize(src) // 2)
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(src, dst, **kwargs)
        if kill and count == kill.n and kill.phase == "after":
            os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace
    sys.stderr, sys.stdout = captured, _ = io.StringIO(), io.StringIO()
    if fsize is not None:  # soft limit only, so it can be lifted to write the captured stderr
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, resource.RLIM_INFINITY))
    if go is not None:  # start together with the other children
        go.wait()
    from hib.cli import main

    try:
        code = main(argv)
    except BaseException:  # a bug: keep its traceback for the test's message
        traceback.print_exc()
        code = 1
    finally:
        unlimited = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
        resource.setrlimit(resource.RLIMIT_FSIZE, unlimited)
        Path(err).write_text(captured.getvalue())
    sys.exit(code)


def start(
    argv: list[str],
    work: Path,
    kill: KillAt | None = None,
    fsize: int | None = None,
    go=None,
) -> multiprocessing.Process:
    """Start `hib argv` in a child; its rename log and stderr go to files in `work`."""
    work.mkdir(parents=True, exist_ok=True)
    args = (argv, str(work / "renames.log"), kill, fsize, str(work / "stderr.txt"), go)
    process = CTX.Process(target=_child, args=args)
    process.start()
    return process


def run(argv: list[str], work: Path, **options) -> tuple[int, str]:
    """Run `hib argv` to its end: (exit code, stderr); -9 when it was killed."""
    process = start(argv, work, **options)
    process.join()
    err = work / "stderr.txt"
    return process.exitcode, err.read_text() if err.is_file() else ""


def error_lines(stderr: str) -> list[str]:
    """What a command said on stderr, progress bars left out."""
    return [line for line in stderr.splitlines() if line.strip() and not PROGRESS.search(line)]


def renames(work: Path) -> list[str]:
    log = work / "renames.log"
    return log.read_text().splitlines() if log.is_file() else []


def _score_worker(run_dir: str, method: str, repetitions: int, barrier) -> None:
    """Load the run once, then score `method` `repetitions` times, each at the barrier's go."""
    from hib.pipeline import Run

    sys.stderr = sys.stdout = io.StringIO()
    run = Run(run_dir, progress=False)
    for _ in range(repetitions):
        barrier.wait()  # go: every worker scores now
        run.score(method, clips=8)
        barrier.wait()  # done: the parent checks results.json


def score_workers(run_dir: Path, methods: list[str], repetitions: int, barrier) -> list:
    """One started worker per method; `barrier` must have len(methods) + 1 parties."""
    workers = [
        CTX.Process(target=_score_worker, args=(str(run_dir), m, repetitions, barrier))
        for m in methods
    ]
    for worker in workers:
        worker.start()
    return workers
