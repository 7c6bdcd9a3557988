"""Useful GFLOP/s of the upstream's evaluation forward against one plain matmul of the same size.

The forward's FLOPs are counted by torch's FlopCounterMode (matrix products and convolutions);
the reference is one (rows x width) @ (width x n) product with the same FLOP count and the same
precision, where rows = clips x positions and width = the hidden size. Both are timed
interleaved in one process. Target: forward / matmul >= 0.6.

    python benchmarks/throughput.py [--batch 64] [--precision float32] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json

import torch

from hib.bench import count_flops, median_ratio
from hib.precision import autocast
from hib.upstream import load_upstream


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", default="whisper-tiny.en")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    upstream = load_upstream(args.upstream)
    generator = torch.Generator().manual_seed(0)
    waves = 0.1 * torch.randn(args.batch, 16000, generator=generator)
    with torch.no_grad():
        positions = upstream(waves).hidden_states[0].shape[1]
    flops = count_flops(lambda: upstream(waves))
    rows, width = args.batch * positions, upstream.hidden_size
    a = torch.randn(rows, width, generator=generator)
    b = torch.randn(width, max(1, round(flops / (2 * rows * width))), generator=generator)

    def forward() -> None:
        with torch.no_grad(), autocast(args.precision):
            upstream(waves)

    def matmul() -> None:
        with autocast(args.precision):
            torch.mm(a, b)

    matmul_flops = count_flops(matmul)
    ratio = median_ratio(forward, matmul, args.repeats)  # forward time / matmul time
    print(
        json.dumps(
            {
                "upstream": args.upstream,
                "batch": args.batch,
                "precision": args.precision,
                "threads": torch.get_num_threads(),
                "forward_gflop": flops / 1e9,
                "matmul_shape": [rows, width, b.shape[1]],
                "throughput_ratio": (flops / matmul_flops) / ratio,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
