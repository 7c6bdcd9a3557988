"""What physical pruning buys: equal outputs, fewer parameters, lower latency.

Latencies are measured interleaved in one process (pruned, unpruned, pruned, ...), after a
warm-up, as medians over many repeats, so a noisy shared machine affects both alike; only
ratios are reported, each beside its FLOP-model ideal (matrix-product FLOPs counted by torch's
FlopCounterMode): heads-only pruning cannot remove the FFN's share, and element-wise work
(layer norms, GELU) does not shrink with heads either.

Run it with no more torch threads than idle cores: on a machine whose cores other jobs hold,
every parallel op waits for a descheduled thread, time follows the number of ops rather than
their FLOPs, and removing heads (fewer FLOPs, as many ops) seems to buy nothing (measured on a
2-core machine at load 5-7: latency ratio 1.10 with 2 threads, 0.84 with 1, ideal 0.87).
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable

import torch

from hib.heads import Heads
from hib.tasks.base import TaskModel


def count_flops(fn: Callable[[], object]) -> int:
    """Matrix-product and convolution FLOPs of one call of fn (torch's own counter).

    torch's counter knows the GPU kernels of scaled_dot_product_attention but not the CPU one,
    which it would count as zero; its two products are counted as the GPU kernels' are.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False, custom_mapping=_CPU_SDPA) as counter:
        fn()
    return counter.get_total_flops()


def _sdpa_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count

    return sdpa_flop_count(query, key, value)


_CPU_SDPA = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _sdpa_flops}


def median_ratio(fast: Callable[[], None], slow: Callable[[], None], repeats: int) -> float:
    """Median time of fast over median time of slow, measured interleaved after a warm-up (on
    a GPU up to the end of the kernels each one queued, not just their launch)."""
    fast(), slow()  # warm-up
    times: dict[str, list[float]] = {"fast": [], "slow": []}
    for _ in range(repeats):
        for key, fn in (("fast", fast), ("slow", slow)):
            _synchronize()
            start = time.perf_counter()
            fn()
            _synchronize()
            times[key].append(time.perf_counter() - start)
    return statistics.median(times["fast"]) / statistics.median(times["slow"])


def _synchronize() -> None:
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _attention_inputs(model: TaskModel, waves: torch.Tensor) -> list[torch.Tensor]:
    """The hidden states entering each attention block for `waves`."""
    inputs: list[torch.Tensor] = []
    handles = [
        b.module.register_forward_pre_hook(
            lambda m, args, kw: inputs.append(kw.get("hidden_states", args[0] if args else None)),
            with_kwargs=True,
        )
        for b in model.heads().blocks
    ]
    try:
        with torch.no_grad():
            model.upstream(waves)
    finally:
        for handle in handles:
            handle.remove()
    return inputs


def _run_attention(model: TaskModel, inputs: list[torch.Tensor]) -> Callable[[], None]:
    """The attention blocks alone, on the kernel the upstream's forward runs them with."""
    blocks = model.heads().blocks

    def run() -> None:
        with torch.no_grad(), model.upstream.attention_kernel():
            for block, x in zip(blocks, inputs, strict=True):
                block.module(x)

    return run


def _params(model: TaskModel) -> int:
    return sum(p.numel() for p in model.upstream.parameters())


def removal_diff(
    heads: Heads, pruned: Heads, mask: torch.Tensor, waves: torch.Tensor, fill: str = "mean"
) -> float:
    """Max abs difference over every hidden state between `mask` applied through `heads`'
    hooks and `pruned`, the same upstream with those heads removed: 0 up to float rounding
    when removal is exact."""
    with torch.no_grad():
        with heads.masked(mask, fill):
            masked = heads.upstream(waves).hidden_states
        removed = pruned.upstream(waves).hidden_states
    return max((a - b).abs().max().item() for a, b in zip(masked, removed, strict=True))


def bench_pruning(
    model: TaskModel,
    mask: torch.Tensor,
    waves: torch.Tensor,
    fill: str = "mean",
    repeats: int = 30,
) -> dict[str, float]:
    """Pruned (physically) vs unpruned `model` on the same clips `waves` (as the upstream
    takes them: a batch of the task's test clips); the outputs compared are every hidden state
    the task head reads."""
    pruned = copy.deepcopy(model)
    pruned.heads().prune(mask, fill)
    diff = removal_diff(model.heads(), pruned.heads(), mask, waves, fill)

    def forward(m: TaskModel) -> Callable[[], None]:
        def run() -> None:
            with torch.no_grad():
                m.upstream(waves)

        return run

    attention = {m: _run_attention(m, _attention_inputs(m, waves)) for m in (pruned, model)}
    return {
        "max_abs_diff": diff,
        "params_ratio": _params(pruned) / _params(model),
        "latency_ratio": median_ratio(forward(pruned), forward(model), repeats),
        "flops_ratio": count_flops(forward(pruned)) / count_flops(forward(model)),
        "attention_latency_ratio": median_ratio(attention[pruned], attention[model], repeats),
        "attention_flops_ratio": count_flops(attention[pruned]) / count_flops(attention[model]),
    }
