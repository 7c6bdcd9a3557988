"""`make demo`: per task, corpus -> run -> head scores -> pruning sweeps -> comparison ->
report, then the tasks side by side.

    runs/demo/ks/     keyword spotting (Speech Commands layout, trained SUPERB head)
    runs/demo/asr/    speech recognition (LibriSpeech layout, Whisper tiny.en's own decoder)
    runs/demo/sid/    speaker identification (VoxCeleb1 layout, trained SUPERB head)
    runs/demo/ic/     intent classification (Fluent Speech Commands layout, one head per slot)
    runs/demo/report.html, results.json   the cross-task view (hib.cross_task)

Every task follows one `TaskPlan`: the demo's scale of `hib train / score / prune / compare`,
smaller than their defaults so the four tasks fit in minutes (fewer clips and a coarser grid
where a point is expensive), never a different protocol. Idempotent: a finished step (trained
model, stored scores) is reused by the next run.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hib.checkpoint import MODEL_FILE
from hib.compare import compare, format_table
from hib.config import load_config, packaged_config
from hib.methods import METHODS
from hib.pipeline import Run
from hib.prune import parse_ratios
from hib.report import write_report
from hib.results import read_results, update_results
from hib.tasks.base import make_task
from hib.train import train
from hib.upstream.packaged import TINY_EN, packaged


def keyword_holdout() -> tuple[str, Any]:
    """The keyword corpus's held-out voices (no synthesis identity of training or test)."""
    from hib.data.corpora import holdout_corpus
    from hib.data.speech_commands import load_split

    return "synthesized held-out voices", load_split(holdout_corpus(), "test")


ATTATTR_STEPS = {"attattr": {"steps": 10}}
"""10 integration steps, not the paper's 20, in the demo's comparison: against 20 steps on the
demo's runs at its clip counts, Spearman 1.0 (KS, SID), 0.998 (ASR), 0.98 (IC), at 1.3-2.2x less
time (benchmarks/attattr_steps.py). `hib compare` keeps 20."""


@dataclass(frozen=True)
class TaskPlan:
    """One task's demo: its config, the clips and grids of each step."""

    config: str  # a packaged config name (src/hib/configs)
    overrides: tuple[str, ...] = ()
    score_clips: int = 1000  # fitting clips for hib's and random's stored scores
    min_steps: int | None = None  # fitted methods' step floor (None: theirs)
    betas: tuple[float, ...] | None = None  # HIB's candidates (None: the pipeline's)
    validation_ratios: str = "0:0.9:0.1"  # where beta is chosen, on validation
    sweep: str = "0:1:0.05"  # hib's and random's test curves
    refit_ratios: tuple[float, ...] = ()  # re-fit the task head (tasks that train one)
    holdout: Callable[[], tuple[str, Any]] | None = None  # another corpus for the pruned model
    compare_seeds: int = 3
    compare_clips: int = 64
    compare_min_steps: int | None = None  # the comparison's step floor (None: min_steps)
    compare_ratios: str = "0:0.9:0.1"
    compare_options: dict[str, dict[str, Any]] = field(default_factory=lambda: ATTATTR_STEPS)
    compare_compensate: str | None = None  # also every method's compensated curve (hib.compensate)
    compensate_clips: int = 256  # the calibration clips of that compensation


PLANS: dict[str, TaskPlan] = {
    # validation at 20/40/60 % ranks HIB's betas as the 0-90 % grid does (README, demo)
    "ks": TaskPlan(
        "demo",
        validation_ratios="0.2,0.4,0.6",
        sweep="0:1:0.1",
        refit_ratios=(0.4,),  # the paper's headline ratio; each re-fit trains a head anew
        holdout=keyword_holdout,
        compare_seeds=1,
        compare_clips=32,
        compare_min_steps=16,
        compare_ratios="0:0.8:0.2",
        # every method's masks also repaired (the kind that kept the most on validation,
        # docs/method.md "Compensation after pruning"), on the default 256 calibration clips
        compare_compensate="ffn",
    ),
    # every WER point decodes the test subset on 30 s windows (docs/asr.md gives the full
    # setting's cost: 200 fitting clips, 5 % steps, every test utterance); 70 % and 90 %
    # are left out of the sweep: every method's WER is about 1 there
    "asr": TaskPlan(
        "demo",
        ("data.test_limit=24", "data.eval_limit=12", "heads.stats_clips=50"),
        score_clips=16,
        min_steps=8,
        betas=(0.001, 0.01, 0.1),
        validation_ratios="0.2,0.4",
        sweep="0,0.1,0.2,0.3,0.4,0.5,0.6,0.8,1",
        compare_seeds=1,
        compare_clips=4,
        compare_ratios="0,0.2,0.4",
    ),
    # every point forwards 2-6 s utterances: 200 of each split, not 800-930; curves without
    # re-fitting only (a re-fit forwards 2,000 training utterances per point). IC keeps its
    # whole validation split (620): training picks its epoch there, and on 200 it picked one
    # 5 points worse on test (84.6 % against 89.4 % on all 930 test utterances, docs/sid_ic.md)
    **{
        task: TaskPlan(
            task,
            ("data.test_limit=200", *limits, "heads.stats_clips=300"),
            score_clips=128,
            min_steps=16,
            validation_ratios="0.2,0.4,0.6",
            sweep="0:0.6:0.1",
            compare_seeds=1,
            compare_clips=16,
            compare_ratios="0,0.2,0.4",
        )
        for task, limits in (("sid", ("data.eval_limit=200",)), ("ic", ()))
    },
}
QUICK_PLANS: dict[str, TaskPlan] = {
    "ks": TaskPlan(
        "quick",
        score_clips=128,
        refit_ratios=(0.2, 0.4, 0.6),
        holdout=keyword_holdout,
        compare_seeds=2,
        compare_clips=16,
        compare_ratios="0:0.9:0.3",
        compare_compensate="ffn",
        compensate_clips=32,
    ),
    "asr": TaskPlan(
        "quick",
        ("data.test_limit=6", "data.eval_limit=4", "heads.stats_clips=8"),
        score_clips=4,
        min_steps=2,
        betas=(0.01,),
        validation_ratios="0.4",
        sweep="0,0.4,1",
        compare_seeds=1,
        compare_clips=2,
        compare_ratios="0,0.4",
    ),
    **{
        task: TaskPlan(
            task,
            (
                "data.train_limit=600",
                "data.eval_limit=60",
                "data.test_limit=60",
                "train.epochs=10",
                "heads.stats_clips=100",
            ),
            score_clips=64,
            min_steps=4,
            betas=(0.01,),
            validation_ratios="0.4",
            sweep="0,0.4,1",
            compare_seeds=1,
            compare_clips=16,
            compare_ratios="0,0.4",
        )
        for task in ("sid", "ic")
    },
}
TASKS = tuple(PLANS)
JOINT_RATIOS = (0.2, 0.3, 0.4)  # the bar: >= 90 % of each task's own mask at 30 %


def demo_plans(quick: bool = False, upstream: str = TINY_EN) -> dict[str, TaskPlan]:
    """The demo's plans (or the quick ones) on `upstream`: the same clips and grids."""
    plans = QUICK_PLANS if quick else PLANS
    if upstream == TINY_EN:
        return plans
    override = f"upstream.name={upstream}"
    return {task: replace(p, overrides=(*p.overrides, override)) for task, p in plans.items()}


def _step(label: str) -> float:
    print(f"== {label}", flush=True)
    return time.perf_counter()


def run_demo(
    out: Path, quick: bool = False, tasks: Sequence[str] = TASKS, upstream: str = TINY_EN
) -> dict:
    """Each task's run folder under `out`, then the cross-task report; returns its record.
    `upstream`: a packaged Whisper (the ASR task decodes with its own decoder); one not
    installed fails here, before any corpus is built."""
    from hib.cross_task import compare_tasks
    from hib.joint import joint_prune

    packaged(upstream)  # UpstreamError: unknown, or how to install it
    start = time.perf_counter()
    plans = demo_plans(quick, upstream)
    for task in tasks:
        run_task_demo(task, out / task, plans[task])
    record: dict = {}
    if len(tasks) > 1:
        record = compare_tasks([out / task for task in tasks], out)
        _step("tasks together: one joint mask (hib scores) against each task's own")
        joint = joint_prune({task: out / task for task in tasks}, out, ratios=JOINT_RATIOS)
        print(f"  ranks combined by the {joint['combine']} (chosen on the validation splits)")
        for task, points in joint["points"].items():
            shares = "  ".join(f"{p['ratio']:.0%}: {_share(p['kept_share'])}" for p in points)
            print(f"  {task}: kept share of its own mask {shares}")
        for method, rec in record["methods"].items():
            names = rec["tasks"]
            for i, j in itertools.combinations(range(len(names)), 2):
                rho = rec["spearman"][i][j]
                print(f"{method} scores, Spearman {names[i]} vs {names[j]}: {rho:.3f}")
        update_results(out, {"seconds_total": time.perf_counter() - start})
    for task in tasks:
        print(f"{task}: {out / task / 'results.json'}  {out / task / 'report.html'}")
    if len(tasks) > 1:
        print(f"tasks compared: {out / 'results.json'}  {out / 'report.html'}")
    return record


def run_task_demo(task: str, out: Path, plan: TaskPlan) -> dict:
    """One task: the run, hib (beta on validation) and random with their test sweeps (and
    re-fits), the held-out corpus if any, the comparison of every method, the report."""
    start = time.perf_counter()
    timings: dict[str, float] = {}
    config = load_config(packaged_config(plan.config), [f"task={task}", *plan.overrides])
    metric_name = None
    if (out / MODEL_FILE).is_file():
        metric_name = read_results(out).get("metric", {}).get("name")
    if metric_name is None or metric_name not in read_results(out):
        t = _step(f"{task}: corpus")
        make_task(config).root()  # built once, cached (hib.data.corpora)
        timings["corpus"] = time.perf_counter() - t
        t = _step(f"{task}: run")
        train(config, out)
        timings["train"] = time.perf_counter() - t
    run = Run(out)
    metric = run.metric.name
    print(f"{task}: unpruned test {metric} {read_results(out)[metric]:.4f}")
    options = {"clips": plan.score_clips}
    if plan.min_steps is not None:
        options["min_steps"] = plan.min_steps
    refit = list(plan.refit_ratios) if run.task.trains_head else None
    for name in ("hib", "random"):
        t = _step(f"{task} {name}: scores, pruning sweep" + (", re-fit" if refit else ""))
        if not (out / "scores" / f"{name}.safetensors").is_file():
            extra = {"ratios": parse_ratios(plan.validation_ratios)}
            if plan.betas is not None:
                extra["candidates"] = {"beta": plan.betas}
            run.score(name, **options, **(extra if name == "hib" else {}))
        run.prune(name, parse_ratios(plan.sweep), refit_ratios=refit)
        timings[name] = time.perf_counter() - t
    if plan.holdout is not None:
        t = _step(f"{task}: held-out voices: does the pruned model generalise?")
        _generalization(run, out, plan)
        timings["generalization"] = time.perf_counter() - t
    t = _step(f"{task}: comparison of every method")
    run.compensate_clips = plan.compensate_clips
    table = compare(
        run,
        methods=sorted(METHODS),
        seeds=plan.compare_seeds,
        clips=plan.compare_clips,
        ratios=parse_ratios(plan.compare_ratios),
        min_steps=plan.min_steps if plan.compare_min_steps is None else plan.compare_min_steps,
        method_options=plan.compare_options,
        compensate=plan.compare_compensate,
    )
    timings["compare"] = time.perf_counter() - t
    print(format_table(table, run.metric))
    previous = read_results(out).get("train", {}).get("seconds", 0.0)
    total = time.perf_counter() - start + (0.0 if "train" in timings else previous)
    results = update_results(out, {"seconds_total": total, "demo_seconds": timings})
    write_report(out)
    return results


def _generalization(run: Run, out: Path, plan: TaskPlan) -> None:
    label, other = plan.holdout()
    ratios = [0.0, *plan.refit_ratios]
    points = run.generalization("hib", ratios, other)
    record = {"method": "hib", "n_other": len(other), "other": label, "points": points}
    update_results(out, {"generalization": record})
    for p in points:
        print(f"  hib {p['ratio']:.1f}: test {p['test']:.4f}  {label} {p['other']:.4f}")


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
