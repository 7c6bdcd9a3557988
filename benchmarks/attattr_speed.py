"""attattr scoring: integrated-gradient steps from each layer's cached input vs from the waveform.

The reference (tests/methods/reference_attattr.py) is the implementation before the cache;
both run m = 20 steps on the same clips, interleaved in one process. Target: >= 3x, scores
equal within 1e-5 (relative).

    python benchmarks/attattr_speed.py [--run runs/demo/ks] [--clips 64] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from _common import add_model_arguments, model_and_clips, time_interleaved

from hib.methods.attattr import AttAttr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.methods.reference_attattr import reference_scores  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser, clips=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    model, clips, described = model_and_clips(args)
    method = AttAttr(steps=args.steps, clips=args.clips)
    runs = {
        "before": lambda: reference_scores(method, model, clips),
        "now": lambda: method.score(model, clips),
    }
    best, scores = time_interleaved(runs, args.repeats)
    scale = scores["before"].abs().max().item()
    print(
        json.dumps(
            {
                "model": described,
                "clips": len(clips),
                "steps": args.steps,
                "before_s": best["before"],
                "now_s": best["now"],
                "speedup": best["before"] / best["now"],
                "max_rel_diff": (scores["now"] - scores["before"]).abs().max().item() / scale,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
