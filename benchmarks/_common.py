"""What the benchmarks share: a KS model on a real upstream and a fixed clip set to time it on.

With `--run DIR` the run's own model and test split are used; without, the packaged Whisper
tiny.en with a seeded random task head and seeded noise clips (the timing does not depend on
what the clips say, and no corpus has to be built first).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from hib.data.utterances import UtteranceDataset
from hib.downstream import UtteranceClassifier
from hib.upstream import Upstream, load_upstream


def add_model_arguments(parser: argparse.ArgumentParser, clips: int) -> None:
    parser.add_argument("--run", help="a trained run folder (default: tiny.en, random head)")
    parser.add_argument("--upstream", default="whisper-tiny.en", help="without --run")
    parser.add_argument("--clips", type=int, default=clips, help="clips to time on")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")


def model_and_clips(args: argparse.Namespace) -> tuple[UtteranceClassifier, Dataset, str]:
    """(model, clips, a description for the JSON output)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.run:
        from hib.pipeline import Run

        run = Run(args.run, progress=False)
        test = run.split("test")
        return run.model, test.subset(range(min(args.clips, len(test)))), f"run {args.run}"
    torch.manual_seed(0)
    model = UtteranceClassifier.build(load_upstream(args.upstream), classes=12).eval()
    generator = torch.Generator().manual_seed(0)
    waves = 0.1 * torch.randn(args.clips, 16000, generator=generator)
    labels = torch.randint(0, 12, (args.clips,), generator=generator)
    model.head_stats = model.heads().fit_stats(iter(waves[:256].split(64)), max_clips=256)
    return model, TensorDataset(waves, labels), f"{args.upstream}, random head, noise clips"


def timed(
    fn: Callable[[], Any], device: torch.device, clock: Callable[[], float] = time.perf_counter
) -> tuple[float, Any]:
    """(seconds by `clock`, output) of `fn()`, waiting for the device before each clock read:
    CUDA kernels run asynchronously, so without the waits the clock would stop before they
    finish. `time.process_time` counts this process's CPU seconds only, which other jobs on a
    shared machine change far less than the wall clock."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = clock()
    output = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return clock() - start, output


def one_pass(
    model: UtteranceClassifier,
    data: TensorDataset,
    batch_size: int,
    clock: Callable[[], float] = time.perf_counter,
) -> float:
    """Seconds for forward + backward (to the input) of the whole model over every clip: the
    unit in which a method's scoring cost is given."""

    def run() -> None:
        for waves, labels in DataLoader(data, batch_size=batch_size):
            waves = waves.clone().requires_grad_(True)
            F.cross_entropy(model(waves), labels).backward()

    return timed(run, data.tensors[0].device, clock)[0]


def time_interleaved(
    runs: dict[str, Callable[[], Any]], repeats: int
) -> tuple[dict[str, float], dict[str, Any]]:
    """(best seconds per run, each run's last output), the runs taking turns `repeats` times."""
    times: dict[str, list[float]] = {k: [] for k in runs}
    outputs: dict[str, Any] = {}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = time.perf_counter()
            outputs[name] = fn()
            times[name].append(time.perf_counter() - start)
    return {k: min(v) for k, v in times.items()}, outputs


@contextmanager
def eager_attention(upstream: Upstream) -> Iterator[None]:
    """The original attention kernel (eager, weights computed and dropped) inside the block."""
    upstream.attn_implementation = "eager"
    try:
        yield
    finally:
        del upstream.attn_implementation  # back to the class default


@torch.inference_mode()
def pooled_features(upstream: Upstream, data: UtteranceDataset) -> torch.Tensor:
    """(N, layers + 1, D): each hidden state layer-normed (no affine), then mean over time.

    One utterance at a time, at its real length (the calibrations of IC and SID train
    SUPERB's heads on these: layer norm is per frame, pooling and the layer sum linear)."""
    rows = []
    for i in range(len(data)):
        states = upstream(data.wave(i)[None]).hidden_states
        rows.append(torch.stack([F.layer_norm(h[0], h.shape[-1:]).mean(0) for h in states]))
    return torch.stack(rows)
