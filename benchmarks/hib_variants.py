"""HIB's variants against its default and the best baselines, on the validation split only.

Each variant (an option of `hib`, docs/method.md "HIB variants"), the default and the
baselines score the run's heads once per seed; each scoring's no-retraining pruning curve on
the validation split (the run's fill, the grid `--ratios`) gives an area (`curve_area`, as
`Run.select` ranks beta). `iterative` re-fits after every step of its sweep
(`Run.rescorer`); `compensate-lsq` and `compensate-proj` are the default's masks repaired by
hib.compensate. HIB's beta stays the one the run chose (results.json), for every variant. The
test split is never read.

    python benchmarks/hib_variants.py --run /tmp/hv/ks --seeds 3 --clips 1000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hib.pipeline import Run, mean_curve
from hib.prune import curve_area, parse_ratios, sweep

VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "hib": ("hib", {}),
    "fisher": ("fisher", {}),
    "ablation": ("ablation", {}),
    "attattr": ("attattr", {}),
    "alpha_per=head": ("hib", {"alpha_per": "head"}),
    "warmup=0.5": ("hib", {"warmup": 0.5}),
    "warmup=1": ("hib", {"warmup": 1.0}),
    "budget=0.4": ("hib", {"budget": 0.4}),
    "budget=0.2": ("hib", {"budget": 0.2}),
    "clips=250": ("hib", {"clips": 250}),
    "clips=500": ("hib", {"clips": 500}),
    "clips=1000": ("hib", {"clips": 1000}),
    "clips=2000": ("hib", {"clips": 2000}),
    "compensate-lsq": ("hib", {}),
    "compensate-proj": ("hib", {}),
    "compensate-ffn": ("hib", {}),
    "iterative": ("hib", {}),
}
COMPENSATED = {"compensate-lsq": "lsq", "compensate-proj": "proj", "compensate-ffn": "ffn"}
SCORED: dict[tuple, torch.Tensor] = {}


def measure(run: Run, variant: str, seed: int, ratios: list[float], options: dict) -> dict:
    """One seed of one variant: its validation curve, area and seconds of scoring (all of the
    re-fits, for iterative; with a compensation, also the mean seconds of one)."""
    name, own = VARIANTS[variant]
    options = {**options.get(name, {}), **own}
    kind = COMPENSATED.get(variant)
    fits: list[float] = []

    def timed(fit: Callable[[], torch.Tensor]) -> torch.Tensor:
        start = time.perf_counter()
        scores = fit()
        fits.append(time.perf_counter() - start)
        return scores

    rescore = None
    if variant == "iterative":
        rescorer = run.rescorer(name, seed, **options)
        rescore = lambda mask: timed(lambda: rescorer(mask))  # noqa: E731
        scores = torch.zeros(run.model.heads().shape)  # unused: every step re-scores
    else:
        key = (name, seed, json.dumps(options, sort_keys=True))
        if key not in SCORED:  # the compensated rows reuse the default's scores
            SCORED[key] = timed(lambda: run.compute_scores(name, seed=seed, **options))
        scores = SCORED[key]
    curve = sweep(
        run.model,
        run.split("validation"),
        scores,
        ratios,
        run.fill,
        rescore=rescore,
        evaluate_masked=lambda mask: run.split_metric("validation", mask, kind),
    )
    row = {"curve": curve, "area": curve_area(curve), "seconds": sum(fits)}
    if kind is not None:
        row["compensate_seconds"] = run.compensation_record(kind)["seconds"]
    return row


def summary(rows: list[dict]) -> dict:
    """Over seeds: the area's mean, std and range, mean seconds, the mean curve."""
    areas = [r["area"] for r in rows]
    out = {
        "auc": float(np.mean(areas)),
        "auc_std": float(np.std(areas)),
        "auc_range": float(np.ptp(areas)),
        "areas": areas,
        "seconds": float(np.mean([r["seconds"] for r in rows])),
        "curve": mean_curve([r["curve"] for r in rows]),
    }
    if "compensate_seconds" in rows[0]:
        out["compensate_seconds"] = float(np.mean([r["compensate_seconds"] for r in rows]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a run folder with HIB's beta chosen")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--clips", type=int, default=1000, help="fitting clips (HIB, fisher ...)")
    parser.add_argument("--attattr-clips", type=int, default=128, help="20 steps per clip")
    parser.add_argument("--ratios", default="0:0.6:0.1")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--json", required=True, help="written after every variant")
    args = parser.parse_args()
    run = Run(args.run, progress=False)
    beta = run.tuned_options("hib").get("beta")
    if beta is None:
        raise SystemExit(f"{args.run}: no chosen beta in results.json (`hib score` it first)")
    options = {
        "hib": {"beta": beta, "clips": args.clips},
        "fisher": {"clips": args.clips},
        "ablation": {"clips": args.clips},
        "attattr": {"clips": args.attattr_clips},
    }
    ratios = parse_ratios(args.ratios)
    out: dict[str, Any] = {"run": args.run, "beta": beta, "ratios": ratios, "seeds": args.seeds}
    out["variants"] = {}
    for variant in args.variants.split(","):
        rows = []
        for s in range(args.seeds):
            start = time.perf_counter()
            rows.append(measure(run, variant, run.config.seed + s, ratios, options))
            wall = time.perf_counter() - start
            print(f"  {variant} seed {s}: area {rows[-1]['area']:.4f} ({wall:.0f} s)", flush=True)
        out["variants"][variant] = summary(rows)
        row = out["variants"][variant]
        print(
            f"{variant:<16} AUC {row['auc']:.4f} ± {row['auc_std']:.4f} "
            f"(range {row['auc_range']:.4f}) {row['seconds']:7.1f} s",
            flush=True,
        )
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
