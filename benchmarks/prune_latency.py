"""`hib bench prune` without a run folder: pruned vs unpruned latency beside the FLOP ideal.

Scores are a method's (default magnitude: data-free, so the random head changes nothing) on
the model from `_common` (a run's with --run); `hib.bench.bench_pruning` times the whole
upstream and the attention blocks alone, interleaved, and prints the ratios with their ideals.
On a shared machine give it --threads 1 (why: hib.bench).

    python benchmarks/prune_latency.py [--ratio 0.4] [--batch 32] [--repeats 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import json

import torch
from _common import add_model_arguments, model_and_clips

from hib.bench import bench_pruning
from hib.methods import get_method
from hib.prune import n_to_prune, prune_mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_arguments(parser, clips=64)
    parser.add_argument("--method", default="magnitude")
    parser.add_argument("--ratio", type=float, default=0.4)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    model, clips, described = model_and_clips(args)
    heads = model.heads()
    scores = get_method(args.method).score(model, clips)
    mask = prune_mask(scores, n_to_prune(args.ratio, heads.n_layers * heads.n_heads))
    waves = next(model.batches(clips, args.batch)).waves
    result = bench_pruning(model, mask, waves, repeats=args.repeats)
    setting = {"model": described, "method": args.method, "ratio": args.ratio}
    print(json.dumps(setting | {"threads": torch.get_num_threads()} | result))


if __name__ == "__main__":
    main()
