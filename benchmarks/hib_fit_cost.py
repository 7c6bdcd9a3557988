"""What fitting HIB on N clips costs, against one forward-backward pass over the same N clips.

Both run in one process on the same clips and batch size (a ratio, not seconds, is the result).
Target (issue "Head Information Bottleneck"): fit / pass <= 3.

    python benchmarks/hib_fit_cost.py [--clips 1000] [--upstream whisper-tiny.en]

The clips are random 1 s waveforms with random labels: timing does not depend on content, and
the fit runs its default schedule (epochs, min_steps) over them.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from _common import one_pass
from torch.utils.data import TensorDataset

from hib.downstream import UtteranceClassifier
from hib.methods import get_method
from hib.upstream import load_upstream


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", default="whisper-tiny.en")
    parser.add_argument("--clips", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = UtteranceClassifier.build(load_upstream(args.upstream), classes=12).eval()
    data = TensorDataset(0.1 * torch.randn(args.clips, 16000), torch.randint(0, 12, (args.clips,)))
    model.head_stats = model.heads().fit_stats(iter([data.tensors[0][:64]]), max_clips=64)
    one_pass(model, TensorDataset(*(t[: args.batch] for t in data.tensors)), args.batch)  # warm
    method = get_method("hib", beta=0.01, clips=args.clips, batch_size=args.batch)
    passes = []
    start = time.perf_counter()
    passes.append(one_pass(model, data, args.batch))
    fit_start = time.perf_counter()
    method.score(model, data)
    fit = time.perf_counter() - fit_start
    passes.append(one_pass(model, data, args.batch))  # before and after, to see drift
    pass_s = sum(passes) / len(passes)
    print(
        json.dumps(
            {
                "upstream": args.upstream,
                "clips": args.clips,
                "batch": args.batch,
                "fit_epochs": method.passes(method.epochs, data),
                "fit_s": fit,
                "pass_s": pass_s,
                "fit_over_pass": fit / pass_s,
                "wall_s": time.perf_counter() - start,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
