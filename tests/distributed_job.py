"""What tests/test_distributed.py starts under `accelerate launch`: several `python -m hib`
commands and API calls in each process, so that hib is imported once per process for all.

    accelerate launch --multi_gpu --num_processes 2 -m tests.distributed_job RUN OUT CLIPS \
        '{"NAME": [TRAIN_OVERRIDES...], ...}'

Each process writes OUT/rank<r>.json: every command's stdout and what the API calls returned;
the trainings go to OUT/NAME.
"""

from __future__ import annotations

import contextlib
import io
import json
import runpy
import sys
from pathlib import Path

SCORED = {"hib": ["--beta", "0.1"], "taylor": [], "l0": []}  # `hib score` options
STAND_IN = {"clips": 9, "batch_size": 4, "min_steps": 3}  # batches of 4, 4, 1: the last
# a stand-in on rank 1; few steps, so HIB's capacities are not all at their floor yet
COMPARED = ["taylor", "l0", "random"]
COMPARISON = {"seeds": 2, "clips": 8, "ratios": [0.0, 0.5, 1.0]}


def hib(*argv: str) -> str:
    """`python -m hib ARGV` in this process; what it printed on stdout."""
    sys.argv = ["hib", *argv]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            runpy.run_module("hib", run_name="__main__")
        except SystemExit as exc:
            if exc.code != 0:
                raise RuntimeError(f"hib {' '.join(argv)}: exit status {exc.code}") from exc
    return out.getvalue()


def data_parallel() -> list[str]:
    """The methods that run data-parallel (`HeadMethod.distributed`)."""
    from hib.methods import METHODS

    return sorted(name for name, cls in METHODS.items() if cls.distributed)


def stand_in_options(method: str) -> dict:
    return {**STAND_IN, **({"beta": 0.1} if method == "hib" else {})}


def main(run_dir: str, out: str, clips: str, trainings: dict[str, list[str]]) -> None:
    from hib.compare import compare
    from hib.distributed import world
    from hib.pipeline import Run

    stdout = {
        m: hib("score", run_dir, "--method", m, "--clips", clips, "--json", *options)
        for m, options in SCORED.items()
    }
    for name, overrides in trainings.items():
        stdout[name] = hib("train", "--out", str(Path(out) / name), *overrides)
    run = Run(run_dir, progress=False, world=world())
    stand_in = {m: run.compute_scores(m, **stand_in_options(m)).tolist() for m in data_parallel()}
    table = compare(run, COMPARED, **COMPARISON)
    record = {"stdout": stdout, "stand_in": stand_in, "comparison": table}
    (Path(out) / f"rank{world().rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(*sys.argv[1:4], json.loads(sys.argv[4]))
