"""A masked evaluation sweep over a clip set: today's path against the original one.

Before (the original path): every mask evaluated by hooks on the full model, from the waveform,
with eager attention. Now (`hib.prune.sweep` with a `LayerCache`): the unmasked layer inputs are
computed once, and each mask runs the physically pruned copy from the first layer it changes,
with fused attention (SDPA). Both in float32 by default, interleaved in one process; the cache
is built anew inside every timed "now" sweep. Target: before / now >= 1.3 with the same curve.

    python benchmarks/sweep_speed.py [--run runs/demo/ks] [--clips 825] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json

import torch
from _common import add_model_arguments, eager_attention, model_and_clips, time_interleaved

from hib.evaluate import evaluate
from hib.layer_cache import LayerCache
from hib.prune import parse_ratios, sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser, clips=825)
    parser.add_argument("--ratios", default="0:1:0.05")
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    model, clips, described = model_and_clips(args)
    heads = model.heads()
    scores = torch.rand(heads.shape, generator=torch.Generator().manual_seed(1))
    ratios = parse_ratios(args.ratios)

    def before(mask: torch.Tensor) -> float:
        with heads.masked(mask), eager_attention(model.upstream):
            return evaluate(model, clips, precision=args.precision).accuracy

    runs = {
        "before": lambda: sweep(model, clips, scores, ratios, evaluate_masked=before),
        "now": lambda: sweep(
            model, clips, scores, ratios, precision=args.precision, cache=LayerCache()
        ),
    }
    best, curves = time_interleaved(runs, args.repeats)
    diffs = [abs(a["accuracy"] - b["accuracy"]) for a, b in zip(*curves.values(), strict=True)]
    print(
        json.dumps(
            {
                "model": described,
                "clips": len(clips),
                "points": len(ratios),
                "precision": args.precision,
                "threads": torch.get_num_threads(),
                "before_s": best["before"],
                "now_s": best["now"],
                "speedup": best["before"] / best["now"],
                "max_accuracy_diff": max(diffs),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
