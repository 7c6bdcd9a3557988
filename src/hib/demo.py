"""`make demo`: corpus -> KS training -> head scores -> pruning sweeps -> report.

Idempotent: a finished step (trained model, stored scores) is reused by the next run.
"""

from __future__ import annotations

import time
from importlib.resources import files
from pathlib import Path

from hib.checkpoint import MODEL_FILE
from hib.config import load_config
from hib.pipeline import Run
from hib.prune import parse_ratios
from hib.report import write_report
from hib.results import read_results, update_results
from hib.train import train

DEMO_METHODS = ("hib", "random")
REFIT_RATIOS = [0.2, 0.4, 0.6]


def config_path(name: str) -> Path:
    """A config shipped with the package (src/hib/configs, linked as configs/)."""
    return Path(str(files("hib") / "configs" / f"{name}.yaml"))


def run_demo(out: Path, quick: bool = False) -> dict:
    start = time.perf_counter()
    config = load_config(config_path("quick" if quick else "demo"))
    done = read_results(out)
    if not ((out / MODEL_FILE).is_file() and "accuracy" in done):
        train(config, out)
    run = Run(out)
    print(f"unpruned test accuracy: {read_results(out)['accuracy']:.4f}")
    clips = 200 if quick else 1000
    for name in DEMO_METHODS:
        if not (out / "scores" / f"{name}.safetensors").is_file():
            run.score(name, clips=clips)
        run.prune(
            name,
            parse_ratios("0:1:0.05"),
            refit_ratios=REFIT_RATIOS,
        )
    results = update_results(out, {"seconds_total": time.perf_counter() - start})
    report = write_report(out)
    print(f"results: {out / 'results.json'}\nreport:  {report}")
    return results
