"""bf16 autocast time over float32 time on this machine, for the upstream's own shapes.

Every distinct nn.Linear input shape of one evaluation forward (batch of 1 s clips), then the
whole forward, each interleaved in one process. A ratio below 1 means bf16 is faster here;
`eval.precision: auto` picks bf16 only below 0.8 (hib.precision), on CPUs with native bf16.

    python benchmarks/precision.py [--upstream whisper-tiny.en] [--batch 64] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json

import torch

from hib.bench import median_ratio
from hib.precision import autocast, native_bf16
from hib.upstream import load_upstream


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", default="whisper-tiny.en")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    upstream = load_upstream(args.upstream)
    waves = 0.1 * torch.randn(args.batch, 16000, generator=torch.Generator().manual_seed(0))
    shapes: dict[tuple, torch.nn.Linear] = {}

    def record(module: torch.nn.Linear, inputs: tuple, _out: torch.Tensor) -> None:
        shapes.setdefault((tuple(inputs[0].shape), module.out_features), module)

    handles = [
        m.register_forward_hook(record)
        for m in upstream.modules()
        if isinstance(m, torch.nn.Linear)
    ]
    with torch.no_grad():
        upstream(waves)
    for handle in handles:
        handle.remove()

    def timed(fn, precision: str):
        def run() -> None:
            with torch.no_grad(), autocast(precision):
                fn()

        return run

    ratios = {}
    for (shape, n_out), module in shapes.items():
        x = torch.randn(shape)
        name = f"linear {'x'.join(map(str, shape))} -> {n_out}"
        ratios[name] = median_ratio(
            timed(lambda m=module, x=x: m(x), "bfloat16"),
            timed(lambda m=module, x=x: m(x), "float32"),
            args.repeats,
        )
    ratios["whole forward"] = median_ratio(
        timed(lambda: upstream(waves), "bfloat16"),
        timed(lambda: upstream(waves), "float32"),
        args.repeats,
    )
    report = {
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": native_bf16(),
        "bf16_over_fp32_time": ratios,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
