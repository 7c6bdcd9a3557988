"""Compensation kinds and calibration clip counts on the validation split only.

A run's stored scores of one method give its masks at `--ratios`; each mask is evaluated on
the validation split plain and after each compensation kind (hib.compensate) fitted on each
number of training clips. Accuracy (the task's metric) and its share of unpruned. This is how
the demo's compensation kind was chosen (docs/method.md, "Compensation after pruning"); the
test split is never read.

    python benchmarks/compensation.py --run runs/demo/ks --kinds none,proj,ffn --clips 64,256
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from hib.compensate import KINDS
from hib.pipeline import Run
from hib.prune import parse_ratios, point_value, sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True)
    parser.add_argument("--method", default="hib", help="whose stored scores give the masks")
    parser.add_argument("--kinds", default="none," + ",".join(KINDS), help="none = plain mask")
    parser.add_argument("--clips", default="256", help="calibration clip counts, a,b,c")
    parser.add_argument("--ratios", default="0,0.2,0.4,0.6")
    parser.add_argument("--json", help="rows written here too")
    args = parser.parse_args()
    run = Run(args.run, progress=False)
    scores = run.stored_scores(args.method)
    ratios = parse_ratios(args.ratios)
    rows = []
    for kind in args.kinds.split(","):
        for clips in [int(c) for c in args.clips.split(",")] if kind != "none" else [None]:
            compensate = None if kind == "none" else kind
            if clips is not None:
                run.compensate_clips = clips
            start = time.perf_counter()
            curve = sweep(
                run.model,
                run.split("validation"),
                scores,
                ratios,
                run.fill,
                evaluate_masked=lambda mask, k=compensate: run.split_metric("validation", mask, k),
            )
            values = [point_value(p) for p in curve]
            rows.append({"kind": kind, "clips": clips, "curve": curve})
            shares = " ".join(f"{v / values[0]:.3f}" for v in values)
            print(
                f"{kind:<5} clips {clips or '-':>5}: "
                + " ".join(f"{v:.4f}" for v in values)
                + f"  share of unpruned {shares}  ({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
            if args.json:
                Path(args.json).write_text(json.dumps({"ratios": ratios, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
