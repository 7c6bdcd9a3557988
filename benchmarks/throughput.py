"""Useful GFLOP/s of the upstream's evaluation forward against one plain matmul of the same size.

The forward's FLOPs are counted by torch's FlopCounterMode (matrix products and convolutions,
SDPA's two products included: hib.bench.count_flops); the reference is one
(rows x width) @ (width x n) product with the same FLOP count and the same precision, where
rows = clips x positions and width = the hidden size. The forward runs with today's fused
attention (SDPA) and with the original eager kernel; all three are timed interleaved in one
process, best of `repeats`. Target: forward / matmul >= 0.6.

    python benchmarks/throughput.py [--batch 64] [--seconds 1] [--threads 1] [--repeats 5]
    python benchmarks/throughput.py --batch 8 --seconds 30     # ASR's 30 s window
"""

from __future__ import annotations

import argparse
import json

import torch
from _common import time_interleaved

from hib.bench import count_flops
from hib.precision import autocast
from hib.upstream import load_upstream


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", default="whisper-tiny.en")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=1.0, help="clip length")
    parser.add_argument("--precision", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    upstream = load_upstream(args.upstream)
    generator = torch.Generator().manual_seed(0)
    waves = 0.1 * torch.randn(args.batch, int(16000 * args.seconds), generator=generator)
    positions = upstream.embed(waves).shape[1]
    flops = count_flops(lambda: upstream(waves))
    rows, width = args.batch * positions, upstream.hidden_size
    a = torch.randn(rows, width, generator=generator)
    b = torch.randn(width, max(1, round(flops / (2 * rows * width))), generator=generator)

    def forward(kernel: str):
        def run() -> None:
            upstream.attn_implementation = kernel
            with autocast(args.precision):
                upstream(waves)

        return run

    def matmul() -> None:
        with autocast(args.precision):
            torch.mm(a, b)

    matmul_flops = count_flops(matmul)
    runs = {"sdpa": forward("sdpa"), "eager": forward("eager"), "matmul": matmul}
    for run in runs.values():  # warm-up
        run()
    best, _ = time_interleaved(runs, args.repeats)
    ratio = {k: (flops / best[k]) / (matmul_flops / best["matmul"]) for k in ("sdpa", "eager")}
    print(
        json.dumps(
            {
                "upstream": args.upstream,
                "input": [args.batch, args.seconds],
                "positions": positions,
                "precision": args.precision,
                "threads": torch.get_num_threads(),
                "forward_gflop": flops / 1e9,
                "matmul_shape": [rows, width, b.shape[1]],
                "seconds": {k: round(v, 4) for k, v in best.items()},
                "throughput_ratio": ratio["sdpa"],
                "throughput_ratio_eager": ratio["eager"],
                "eager_over_sdpa_time": best["eager"] / best["sdpa"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
