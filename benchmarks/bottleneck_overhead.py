"""How much a HIB training step costs over a plain forward-backward of the same model.

Both are measured interleaved in one process on the same batches (ratios, not seconds, are
the result: the machines are shared and noisy). Target: bottleneck step / plain step < 1.2.

    python benchmarks/bottleneck_overhead.py [--upstream NAME] [--batch 32] [--repeats 20]

The plain step back-propagates the task loss to the head contexts (what any gradient-based
head method needs); the HIB step adds noise injection, the KL and the alpha update.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from hib.bottleneck import HeadBottleneck
from hib.downstream import UtteranceClassifier
from hib.upstream import load_upstream


def build(upstream_name: str, batch: int) -> tuple[UtteranceClassifier, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = UtteranceClassifier.build(load_upstream(upstream_name), classes=12).eval()
    waves = 0.1 * torch.randn(batch, 16000)
    labels = torch.randint(0, 12, (batch,))
    model.head_stats = model.heads().fit_stats(iter([waves]), max_clips=batch)
    return model, waves, labels


def plain_step(model: UtteranceClassifier, waves: torch.Tensor, labels: torch.Tensor) -> None:
    waves = waves.clone().requires_grad_(True)  # so the frozen upstream is back-propagated
    F.cross_entropy(model(waves), labels).backward()


def bottleneck_step(model, bottleneck, optimizer, waves, labels, beta: float = 0.1) -> None:
    with bottleneck.attached():
        logits = model(waves)
    loss = F.cross_entropy(logits, labels) + beta * bottleneck.capacity().mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", default="whisper-tiny.en")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    model, waves, labels = build(args.upstream, args.batch)
    bottleneck = HeadBottleneck(model.heads())
    optimizer = torch.optim.Adam([bottleneck.alpha], lr=1.0)
    steps = {
        "plain": lambda: plain_step(model, waves, labels),
        "bottleneck": lambda: bottleneck_step(model, bottleneck, optimizer, waves, labels),
    }
    for step in steps.values():  # warm-up
        step()
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(args.repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    median = {k: statistics.median(v) for k, v in times.items()}
    print(
        json.dumps(
            {
                "upstream": args.upstream,
                "batch": args.batch,
                "repeats": args.repeats,
                "plain_step_s": median["plain"],
                "bottleneck_step_s": median["bottleneck"],
                "overhead_ratio": median["bottleneck"] / median["plain"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
