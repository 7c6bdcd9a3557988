"""`make demo`: corpus -> KS training -> head scores -> pruning sweeps -> comparison -> report.

Idempotent: a finished step (trained model, stored scores) is reused by the next run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from hib.checkpoint import MODEL_FILE
from hib.compare import compare, format_table
from hib.config import load_config
from hib.data.corpora import holdout_corpus
from hib.data.speech_commands import load_split
from hib.pipeline import Run
from hib.prune import parse_ratios
from hib.report import write_report
from hib.results import read_results, update_results
from hib.train import train


@dataclass(frozen=True)
class DemoPlan:
    config: str  # a packaged config name
    score_clips: int  # training clips for the demo's hib and random scores
    compare_seeds: int
    compare_clips: int  # fewer than `hib compare`'s default: the demo must fit in minutes
    compare_ratios: str


FULL = DemoPlan(
    "demo", score_clips=1000, compare_seeds=3, compare_clips=64, compare_ratios="0:0.9:0.1"
)
QUICK = DemoPlan(
    "quick", score_clips=128, compare_seeds=2, compare_clips=16, compare_ratios="0:0.9:0.3"
)
REFIT_RATIOS = [0.2, 0.4, 0.6]


def config_path(name: str) -> Path:
    """A config shipped with the package (src/hib/configs, linked as configs/)."""
    return Path(str(files("hib") / "configs" / f"{name}.yaml"))


def _step(label: str) -> float:
    print(f"== {label}", flush=True)
    return time.perf_counter()


def run_demo(out: Path, quick: bool = False) -> dict:
    plan = QUICK if quick else FULL
    start = time.perf_counter()
    timings: dict[str, float] = {}
    if not ((out / MODEL_FILE).is_file() and "accuracy" in read_results(out)):
        t = _step("corpus and training")
        train(load_config(config_path(plan.config)), out)
        timings["train"] = time.perf_counter() - t
    run = Run(out)
    print(f"unpruned test accuracy: {read_results(out)['accuracy']:.4f}")
    for name in ("hib", "random"):
        t = _step(f"{name}: scores, pruning sweep, refit")
        if not (out / "scores" / f"{name}.safetensors").is_file():
            run.score(name, clips=plan.score_clips)
        # 5 % steps (method.md); the comparison's 10 % grid is a subset, so its sweeps of the
        # same masks (random's seeds, ...) are memoised by Run.test_metric, not re-run
        run.prune(name, parse_ratios("0:1:0.05"), refit_ratios=REFIT_RATIOS)
        timings[name] = time.perf_counter() - t
    t = _step("held-out voices: does the pruned model generalise?")
    holdout = load_split(holdout_corpus(), "test")
    points = run.generalization("hib", [0.0, *REFIT_RATIOS], holdout)
    update_results(
        out,
        {
            "generalization": {
                "method": "hib",
                "n_other": len(holdout),
                "other": "synthesized held-out voices",
                "points": points,
            }
        },
    )
    for p in points:
        print(f"  hib {p['ratio']:.1f}: test {p['test']:.4f}  held-out voices {p['other']:.4f}")
    timings["generalization"] = time.perf_counter() - t
    t = _step("comparison of every method")
    table = compare(
        run,
        seeds=plan.compare_seeds,
        clips=plan.compare_clips,
        ratios=parse_ratios(plan.compare_ratios),
    )
    timings["compare"] = time.perf_counter() - t
    print(format_table(table))
    previous = read_results(out).get("train", {}).get("seconds", 0.0)
    total = time.perf_counter() - start + (0.0 if "train" in timings else previous)
    results = update_results(out, {"seconds_total": total, "demo_seconds": timings})
    report = write_report(out)
    print(f"results: {out / 'results.json'}\nreport:  {report}")
    return results
