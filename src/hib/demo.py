"""`make demo`: per task, corpus -> run -> head scores -> pruning sweeps -> comparison ->
report, then the tasks side by side.

    runs/demo/ks/     keyword spotting (Speech Commands layout, trained SUPERB head)
    runs/demo/asr/    speech recognition (LibriSpeech layout, Whisper tiny.en's own decoder)
    runs/demo/report.html, results.json   the cross-task view (hib.cross_task)

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


@dataclass(frozen=True)
class ASRPlan:
    """The demo's ASR scale. Every WER point decodes the test subset with 30 s windows (about
    a second per utterance on 2 cores), so the demo measures fewer utterances and a coarser
    grid than `hib score/prune/compare` would (200 fitting clips, 5 % steps, every clip):
    docs/asr.md gives the cost of the full setting."""

    overrides: tuple[str, ...]
    score_clips: int
    min_steps: int
    betas: tuple[float, ...]
    validation_ratios: str
    sweep: str
    compare_seeds: int
    compare_clips: int
    compare_ratios: str


ASR_FULL = ASRPlan(
    ("task=asr", "data.test_limit=40", "data.eval_limit=20", "heads.stats_clips=100"),
    score_clips=16,
    min_steps=8,
    betas=(0.001, 0.01, 0.1),
    validation_ratios="0.2,0.4,0.6",
    sweep="0:1:0.1",
    compare_seeds=1,
    compare_clips=8,
    compare_ratios="0,0.2,0.4,0.6",
)
ASR_QUICK = ASRPlan(
    ("task=asr", "data.test_limit=6", "data.eval_limit=4", "heads.stats_clips=8"),
    score_clips=4,
    min_steps=2,
    betas=(0.01,),
    validation_ratios="0.4",
    sweep="0,0.4,1",
    compare_seeds=1,
    compare_clips=2,
    compare_ratios="0,0.4",
)


def config_path(name: str) -> Path:
    """A config shipped with the package (src/hib/configs, linked as configs/)."""
    return Path(str(files("hib") / "configs" / f"{name}.yaml"))


def _step(label: str) -> float:
    print(f"== {label}", flush=True)
    return time.perf_counter()


def run_demo(out: Path, quick: bool = False) -> dict:
    """Both tasks' run folders under `out`, then the cross-task report; returns its record."""
    from hib.cross_task import compare_tasks

    start = time.perf_counter()
    run_ks_demo(out / "ks", quick)
    run_asr_demo(out / "asr", quick)
    record = compare_tasks([out / "ks", out / "asr"], out)
    for method, rec in record["methods"].items():
        print(f"{method} scores, Spearman KS vs ASR: {rec['spearman'][0][1]:.3f}")
    update_results(out, {"seconds_total": time.perf_counter() - start})
    for name in ("ks", "asr"):
        print(f"{name}: {out / name / 'results.json'}  {out / name / 'report.html'}")
    print(f"tasks compared: {out / 'results.json'}  {out / 'report.html'}")
    return record


def run_asr_demo(out: Path, quick: bool = False) -> dict:
    """ASR on Whisper tiny.en: HIB (beta on validation), random, sweep, comparison."""
    plan = ASR_QUICK if quick else ASR_FULL
    start = time.perf_counter()
    timings: dict[str, float] = {}
    if not ((out / MODEL_FILE).is_file() and "wer" in read_results(out)):
        t = _step("asr: corpus and run (nothing to train: Whisper's own decoder)")
        config = load_config(config_path("quick" if quick else "demo"), list(plan.overrides))
        train(config, out)
        timings["run"] = time.perf_counter() - t
    run = Run(out)
    print(f"unpruned test WER: {read_results(out)['wer']:.4f}")
    options = {"clips": plan.score_clips, "min_steps": plan.min_steps}
    for name in ("hib", "random"):
        t = _step(f"asr {name}: scores, pruning sweep in WER")
        if not (out / "scores" / f"{name}.safetensors").is_file():
            extra = {"betas": plan.betas, "ratios": parse_ratios(plan.validation_ratios)}
            run.score(name, **options, **(extra if name == "hib" else {}))
        run.prune(name, parse_ratios(plan.sweep))
        timings[name] = time.perf_counter() - t
    t = _step("asr: comparison of every method")
    table = compare(
        run,
        seeds=plan.compare_seeds,
        clips=plan.compare_clips,
        ratios=parse_ratios(plan.compare_ratios),
        min_steps=plan.min_steps,
    )
    timings["compare"] = time.perf_counter() - t
    print(format_table(table, run.metric))
    results = update_results(
        out, {"seconds_total": time.perf_counter() - start, "demo_seconds": timings}
    )
    write_report(out)
    return results


def run_ks_demo(out: Path, quick: bool = False) -> dict:
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
    print(format_table(table, run.metric))
    previous = read_results(out).get("train", {}).get("seconds", 0.0)
    total = time.perf_counter() - start + (0.0 if "train" in timings else previous)
    results = update_results(out, {"seconds_total": total, "demo_seconds": timings})
    write_report(out)
    return results
