"""Where an evaluation forward of the upstream spends its time, by part, with either kernel.

The forward is profiled (torch.profiler, self CPU time per aten op) in its two halves: `embed`
(log-mel, convolutional front-end, positions: what the layer cache saves) and the layers,
whose ops are grouped into projections and FFN (Linear), attention (eager's matmuls and
softmax, or SDPA's fused kernel), layer norms, GELU, copies (transposes made contiguous) and
element-wise rest. Prints one JSON object: milliseconds per forward and percent per group.

    python benchmarks/profile_forward.py [--seconds 1] [--batch 64] [--threads 1]
    python benchmarks/profile_forward.py --seconds 30 --batch 8 --kernels eager,sdpa
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from hib.upstream import load_upstream

GROUPS = (
    ("attention", ("bmm", "softmax", "scaled_dot_product", "flash_attention")),
    ("linear", ("addmm", "aten::mm", "linear")),
    ("front-end conv", ("conv",)),
    ("log-mel", ("fft", "stft", "log10", "pad")),
    ("layer norm", ("layer_norm",)),
    ("gelu", ("gelu",)),
    ("copies", ("copy_", "clone", "contiguous")),
)
"""(group, substrings of aten op names), first match wins; anything else is "other"."""


def group_of(op: str) -> str:
    return next((g for g, keys in GROUPS if any(k in op for k in keys)), "other")


def profiled_ms(fn, repeats: int) -> dict[str, float]:
    """Self CPU milliseconds per call of fn, per group (after one warm-up call)."""
    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(repeats):
            fn()
    out: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        out[group_of(event.key)] += event.self_cpu_time_total / 1000 / repeats
    return dict(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", default="whisper-tiny.en")
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--kernels", default="eager,sdpa", help="attention kernels to profile")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    upstream = load_upstream(args.upstream)
    waves = 0.1 * torch.randn(
        args.batch, int(16000 * args.seconds), generator=torch.Generator().manual_seed(0)
    )
    first = upstream.embed(waves)
    result: dict = {
        "upstream": args.upstream,
        "input": [args.batch, args.seconds],
        "positions": first.shape[1],
        "threads": torch.get_num_threads(),
    }
    embed = profiled_ms(lambda: upstream.embed(waves), args.repeats)
    for kernel in args.kernels.split(","):
        upstream.attn_implementation = kernel
        layers = profiled_ms(lambda: upstream.run_layers([first]), args.repeats)
        total = sum(embed.values()) + sum(layers.values())
        parts = {"embed (log-mel + front-end)": sum(embed.values())} | {
            f"layers: {k}": v for k, v in sorted(layers.items(), key=lambda kv: -kv[1])
        }
        result[kernel] = {
            "forward_ms": round(total, 1),
            "percent": {k: round(100 * v / total, 1) for k, v in parts.items()},
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
