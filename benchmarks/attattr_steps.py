"""attattr with fewer integration steps: does the head ranking change, and what does it save?

Scores a run's heads with m = 20 (the paper's) and with fewer steps on the same training clips,
and prints both times and the Spearman correlation of the two score grids (the demo's
comparison uses 10 steps: hib.demo.ATTATTR_STEPS).

    python benchmarks/attattr_steps.py --run runs/demo/sid --clips 16 [--steps 10]
"""

from __future__ import annotations

import argparse
import json
import time

from scipy.stats import spearmanr

from hib.pipeline import Run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a run folder (runs/demo/ks ...)")
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    run = Run(args.run, progress=False)
    scores, seconds = {}, {}
    for steps in (20, args.steps):
        start = time.perf_counter()
        scores[steps] = run.compute_scores("attattr", clips=args.clips, steps=steps).flatten()
        seconds[steps] = time.perf_counter() - start
    rho = spearmanr(scores[20].numpy(), scores[args.steps].numpy()).statistic
    print(
        json.dumps(
            {
                "run": args.run,
                "clips": args.clips,
                "steps": [20, args.steps],
                "seconds": [seconds[20], seconds[args.steps]],
                "speedup": seconds[20] / seconds[args.steps],
                "spearman": float(rho),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
