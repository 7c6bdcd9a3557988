"""Attention heads as first-class objects: enumerate, read, replace, mask, remove.

Every head method talks to this module, never to Whisper or wav2vec2 internals. The one place
a head is touched is its *context*: the slice of the input of the block's output projection
W_O, seen as (B, T, n_heads, head_dim). A forward pre-hook on `out_proj` reads or replaces it,
and the context managers below attach such hooks only for the duration of a `with` block, so
nothing leaks into later code (the way IBA attaches and detaches its bottleneck).

Heads are addressed on the *original* grid (layer, head) even after physical removal: `kept`
maps each layer's current heads back to their original indices, and masks are always
(n_layers, n_heads) tensors on that grid, 1 = keep, 0 = remove.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hib.distributed import LOCAL, World
from hib.upstream.base import AttentionBlock, Upstream, mark_unpruned

ContextFn = Callable[[int, torch.Tensor], torch.Tensor]
FILLS = ("mean", "zero")


@dataclass(frozen=True)
class Head:
    layer: int
    index: int

    @property
    def name(self) -> str:
        return f"L{self.layer}.H{self.index}"


class HeadStats:
    """Per-head, per-channel mean and std of the context (Welford over clips and frames)."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, n_clips: int):
        self.mean, self.std, self.n_clips = mean, std, n_clips  # (L, H, head_dim) each

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            "heads.mean": self.mean,
            "heads.std": self.std,
            "heads.n_clips": torch.tensor(self.n_clips),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> HeadStats | None:
        if "heads.mean" not in state:
            return None
        return cls(state["heads.mean"], state["heads.std"], int(state["heads.n_clips"]))


class Heads:
    """All attention heads of one upstream (or of any head source, e.g. Whisper's decoder)."""

    def __init__(self, upstream: Upstream, stats: HeadStats | None = None):
        self.upstream = upstream
        self.blocks: list[AttentionBlock] = upstream.attention_blocks()
        self.stats = stats
        mark_unpruned(upstream)

    # --- enumeration -------------------------------------------------------------------
    @property
    def kept(self) -> list[list[int]]:
        """Original indices of the heads each layer still has."""
        return self.upstream.kept_heads

    @property
    def n_layers(self) -> int:
        return len(self.blocks)

    @property
    def n_heads(self) -> int:
        """Heads per layer on the original grid."""
        return self.upstream.head_grid[1]

    @property
    def head_dim(self) -> int:
        return self.blocks[0].head_dim

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_layers, self.n_heads)

    @property
    def device(self) -> torch.device:
        """Where the heads compute: fill values and masks are sent there, scores come back."""
        return self.blocks[0].out_proj.weight.device

    def __iter__(self) -> Iterator[Head]:
        for layer, kept in enumerate(self.kept):
            for index in kept:
                yield Head(layer, index)

    def __len__(self) -> int:
        return sum(len(k) for k in self.kept)

    def alive(self) -> torch.Tensor:
        """(L, H) bool: heads that physically exist."""
        out = torch.zeros(self.shape, dtype=torch.bool)
        for layer, kept in enumerate(self.kept):
            out[layer, kept] = True
        return out

    # --- hooks ---------------------------------------------------------------------------
    @contextmanager
    def replace_context(self, fn: ContextFn) -> Iterator[None]:
        """Inside the block, each layer's context (B, T, h, d) is replaced by fn(layer, ctx).

        `ctx` holds the layer's current heads in the order of `kept[layer]`; a layer that
        lost every head (one inert head left) is not passed to fn.
        """
        handles = []
        for layer, block in enumerate(self.blocks):
            if not self.kept[layer]:
                continue

            def hook(module: nn.Module, args: tuple, layer: int = layer, block=block):
                x = args[0]
                ctx = x.view(*x.shape[:-1], block.num_heads, block.head_dim)
                return (fn(layer, ctx).reshape(x.shape),) + tuple(args[1:])

            handles.append(block.out_proj.register_forward_pre_hook(hook))
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    @contextmanager
    def capture(self) -> Iterator[list[list[torch.Tensor]]]:
        """Record every layer's context: yields a list per layer, appended each forward."""
        record: list[list[torch.Tensor]] = [[] for _ in self.blocks]

        def keep(layer: int, ctx: torch.Tensor) -> torch.Tensor:
            record[layer].append(ctx)
            return ctx

        with self.replace_context(keep):
            yield record

    def fill_values(self, fill: str) -> torch.Tensor:
        """(L, H, d) what a removed head passes on, on the heads' device: its training mean,
        or zeros."""
        if fill not in FILLS:
            raise ValueError(f"unknown fill '{fill}' (choose from {', '.join(FILLS)})")
        if fill == "zero":
            return torch.zeros(*self.shape, self.head_dim, device=self.device)
        if self.stats is None:
            raise ValueError("mean fill needs head statistics: run Heads.fit_stats first")
        return self.stats.mean.to(self.device)

    @contextmanager
    def masked(self, mask: torch.Tensor, fill: str = "mean") -> Iterator[None]:
        """Heads with mask 0 pass `fill` instead of their context while the block runs."""
        values = self.fill_values(fill)
        # which layers drop a head is read on the CPU, so no forward waits for a GPU to say it
        mask = mask.to("cpu", torch.bool)
        drops = (~mask).to(self.device)

        def apply(layer: int, ctx: torch.Tensor) -> torch.Tensor:
            kept = self.kept[layer]
            if mask[layer, kept].all():
                return ctx
            fill_ctx = values[layer, kept].to(ctx.dtype)  # (h, d)
            return torch.where(drops[layer, kept][:, None], fill_ctx, ctx)

        with self.replace_context(apply):
            yield

    @contextmanager
    def gated(self, gates: torch.Tensor, fill: str = "mean") -> Iterator[None]:
        """Context -> g * ctx + (1 - g) * fill, per head; gates (L, H) may require grad."""
        values = self.fill_values(fill)

        def apply(layer: int, ctx: torch.Tensor) -> torch.Tensor:
            kept = self.kept[layer]
            g = gates[layer, kept].to(ctx.device, ctx.dtype)[:, None]
            return g * ctx + (1 - g) * values[layer, kept].to(ctx.dtype)

        with self.replace_context(apply):
            yield

    # --- statistics ----------------------------------------------------------------------
    @torch.no_grad()
    def fit_stats(
        self,
        batches: Iterable[Any],
        max_clips: int,
        forward: Callable[[Any], Any] | None = None,
        world: World = LOCAL,
    ) -> HeadStats:
        """Mean and std of each head's context over up to max_clips clips (Welford, batched).

        `forward(batch)` runs the model on one batch (default: `self.upstream(batch)` on a
        waveform batch cut to the clips still wanted). A layer may record several contexts per
        batch (consecutive clips along dim 0, e.g. one decoder pass per transcript); clips past
        max_clips are dropped from the records, and every layer counts its own frames.
        Batches that are `world`'s parts of global batches (hib.distributed) count the global
        batch's clips, and the processes' moments are merged at the end.
        Each batch's moments are taken where it ran and summed on the CPU, where the stats live.
        """
        shape = (*self.shape, self.head_dim)
        count = torch.zeros(self.n_layers)
        mean, m2 = torch.zeros(shape), torch.zeros(shape)
        seen = 0
        for batch in batches:
            part = getattr(batch, "part", None)
            wanted = max_clips - seen
            own = wanted if part is None else max(0, min(part.stop, wanted) - part.start)
            recorded = self._add_moments(batch, own, forward, count, mean, m2) if own > 0 else 0
            seen += recorded if part is None else min(part.total, wanted)
            if seen >= max_clips:
                break
        count, mean, m2 = world.merge_moments(count, mean, m2)
        std = (m2 / count.clamp(min=1)[:, None, None]).sqrt()
        self.stats = HeadStats(mean, std, seen)
        return self.stats

    def _add_moments(
        self,
        batch: Any,
        wanted: int,
        forward: Callable[[Any], Any] | None,
        count: torch.Tensor,
        mean: torch.Tensor,
        m2: torch.Tensor,
    ) -> int:
        """Welford's update of (count, mean, m2), in place, with the contexts of the batch's
        first `wanted` clips; returns the clips recorded."""
        if forward is None:
            batch = batch[:wanted]
        with self.capture() as record:
            (forward or self.upstream)(batch)
        record = [_first_clips(entries, wanted) for entries in record]
        for layer, kept in enumerate(self.kept):
            if not kept:  # a layer that lost every head records nothing
                continue
            ctx = torch.cat([c.reshape(-1, len(kept), self.head_dim) for c in record[layer]])
            ctx = ctx.double()
            n_b = torch.tensor(float(ctx.shape[0]))
            b_mean = ctx.mean(0)
            b_m2 = ((ctx - b_mean) ** 2).sum(0).cpu()
            b_mean = b_mean.cpu()
            delta = b_mean - mean[layer, kept].double()
            total = count[layer] + n_b
            mean[layer, kept] = (mean[layer, kept] + delta * n_b / total).float()
            m2[layer, kept] = (
                m2[layer, kept] + b_m2 + delta**2 * count[layer] * n_b / total
            ).float()
            count[layer] += ctx.shape[0]
        return max(sum(c.shape[0] for c in entries) for entries in record)

    # --- physical removal ----------------------------------------------------------------
    @torch.no_grad()
    def prune(self, mask: torch.Tensor, fill: str = "mean") -> None:
        """Physically remove heads with mask 0: slice q/k/v rows and out_proj columns (and
        whatever else a module keeps per head, through its `keep_heads(local indices)`: WavLM's
        gate constants and position-bias rows).

        The removed heads' fill contribution (W_O[:, head] @ fill) is folded into the out_proj
        bias, so the pruned model computes exactly what `masked(mask, fill)` computes. A layer
        losing every head keeps one inert head (zero weights) so its shapes stay valid.
        """
        values = self.fill_values(fill)
        for layer, block in enumerate(self.blocks):
            kept = self.kept[layer]
            keep_local = [i for i, h in enumerate(kept) if mask[layer, h]]
            drop_local = [i for i, h in enumerate(kept) if not mask[layer, h]]
            if not drop_local:
                continue
            d = block.head_dim
            out_proj = block.out_proj
            # summed in float64: mask = removal is then exact to the model's own precision
            folded = out_proj.weight.new_zeros(out_proj.out_features, dtype=torch.float64)
            for i in drop_local:
                cols = out_proj.weight[:, i * d : (i + 1) * d]
                folded += cols.double() @ values[layer, kept[i]].double()
            inert = not keep_local
            rows = _head_rows(keep_local or [0], d).to(out_proj.weight.device)
            for name in ("q_proj", "k_proj", "v_proj"):
                new = _slice_linear(getattr(block, name), rows, dim=0)
                if inert:
                    new.weight.zero_()
                    if new.bias is not None:
                        new.bias.zero_()
                setattr(block.module, name, new)
            new_out = _slice_linear(out_proj, rows, dim=1, force_bias=True)
            if inert:
                new_out.weight.zero_()
            new_out.bias += folded.to(new_out.bias.dtype)
            block.module.out_proj = new_out
            if hasattr(block.module, "keep_heads"):  # per-head state beyond the projections
                block.module.keep_heads(keep_local or [0])
            block.module.num_heads = max(len(keep_local), 1)
            if hasattr(block.module, "embed_dim_inner"):
                block.module.embed_dim_inner = block.module.num_heads * d
            self.kept[layer] = [kept[i] for i in keep_local]
        self.blocks = self.upstream.attention_blocks()

    # --- more than the context: attention maps, values, gradients (for the baselines) ----
    def attention_maps(self, waves: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's attention weights (B, h, T, S), heads in the order of `kept[layer]`."""
        return self.upstream(waves, output_attentions=True).attentions

    @contextmanager
    def capture_values(self) -> Iterator[list[list[torch.Tensor]]]:
        """Record every layer's value states (B, S, h, d), the v_proj output, each forward.

        With a layer's attention map A they give its context as C = A V per head, the link
        attention-map attributions differentiate through.
        """
        record: list[list[torch.Tensor]] = [[] for _ in self.blocks]

        def keep(layer: int, block: AttentionBlock) -> Callable:
            def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
                record[layer].append(out.view(*out.shape[:-1], block.num_heads, block.head_dim))

            return hook

        handles = [
            block.v_proj.register_forward_hook(keep(layer, block))
            for layer, block in enumerate(self.blocks)
        ]
        try:
            yield record
        finally:
            for handle in handles:
                handle.remove()

    @contextmanager
    def probed(self) -> Iterator[list[list[torch.Tensor]]]:
        """Add a zero leaf (B, T, h, d) to every layer's context, recorded each forward.

        The upstream is frozen, so its contexts carry no gradient of their own; with the leaves,
        autograd.grad(loss, leaf) is d loss / d context for every example of the batch at once,
        while the forward stays unchanged. Hooks entered before this one act first, so the
        gradient is taken at whatever context they pass on.
        """
        record: list[list[torch.Tensor]] = [[] for _ in self.blocks]

        def probe(layer: int, ctx: torch.Tensor) -> torch.Tensor:
            leaf = torch.zeros_like(ctx, requires_grad=True)
            record[layer].append(leaf)
            return ctx + leaf

        with self.replace_context(probe):
            yield record

    def on_grid(self, per_layer: list[torch.Tensor]) -> torch.Tensor:
        """(L, H) on the CPU from one value per current head of each layer (order of `kept`), 0
        elsewhere.

        A layer that lost every head still runs one inert head; its value is dropped.
        """
        out = torch.zeros(self.shape)
        for layer, (kept, values) in enumerate(zip(self.kept, per_layer, strict=True)):
            out[layer, kept] = values[: len(kept)].detach().float().cpu()
        return out


def _first_clips(entries: list[torch.Tensor], n: int) -> list[torch.Tensor]:
    """The recorded contexts of the first n clips (entries hold consecutive clips on dim 0)."""
    out = []
    for ctx in entries:
        if n <= 0:
            break
        out.append(ctx[:n])
        n -= ctx.shape[0]
    return out


def _head_rows(heads: list[int], head_dim: int) -> torch.Tensor:
    return torch.cat([torch.arange(h * head_dim, (h + 1) * head_dim) for h in heads])


def _slice_linear(linear: nn.Linear, index: torch.Tensor, dim: int, force_bias: bool = False):
    """A new nn.Linear keeping `index` of the output rows (dim 0) or input columns (dim 1), on
    the old one's device (built on the CPU first, so its throwaway initialisation draws from the
    CPU generator on every device alike)."""
    weight = linear.weight.index_select(dim, index)
    has_bias = linear.bias is not None or force_bias
    new = nn.Linear(weight.shape[1], weight.shape[0], bias=has_bias)
    new.weight.copy_(weight)
    new.weight.requires_grad_(linear.weight.requires_grad)
    if has_bias:
        if linear.bias is None:
            new.bias.zero_()
        elif dim == 0:
            new.bias.copy_(linear.bias[index])
        else:
            new.bias.copy_(linear.bias)
        new.bias.requires_grad_(linear.weight.requires_grad)
    return new.to(linear.weight.device, linear.weight.dtype)
