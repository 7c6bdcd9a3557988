"""What no head mask can change, computed once per evaluation set.

A masked forward of a frozen upstream equals the unmasked one up to the first layer that lost a
head: every layer input before it is the same for every mask, and the waveform -> log-mel ->
convolutions -> layer-0 input part (a quarter of a Whisper tiny.en forward) never changes. A
`LayerCache` keeps, per fixed clip set (a validation or test split with its deterministic
degradations), the unmasked raw layer inputs of every batch, so `hib.evaluate` starts each
masked forward from the deepest input the mask leaves unchanged; the clips are not even read
again. It also keeps the raw states of the last mask evaluated on the set (`MaskedStates`): a
sweep's masks are nested, so the next one usually differs from it only from a deeper layer
than from the unmasked model, and starts there.

Entries are keyed by a hash of the clips (their samples and everything else a batch carries),
of the upstream (its name, kept heads, parameters and buffers) and of the precision, so a change
to any of them computes afresh and replaces the entry. They stay in memory within
`budget_bytes`: all layer inputs when they fit, else the layer-0 inputs alone, else (with a
`disk_dir`) the layer-0 inputs in a safetensors file named by the key, read back lazily.
Cached and uncached evaluation run the same operations on the same batches, so they give
identical outputs (tests/test_layer_cache.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch.utils.data import Dataset

from hib.device import CPU, module_device
from hib.io import save_tensors
from hib.precision import autocast
from hib.tasks.base import Batch, TaskModel
from hib.upstream.base import Upstream

DEFAULT_BUDGET_BYTES = 2 * 2**30


@dataclass
class CachedSet:
    """One clip set's unmasked raw states: per batch, the inputs of layers 0..depth."""

    key: str
    depth: int  # n_layers when every layer input is kept (the last "input" is the final output)
    extras: list[Batch]  # per batch, its targets and lengths (the waveforms are not kept)
    states: list[list[torch.Tensor]] = field(default_factory=list)  # empty when on disk
    path: Path | None = None
    device: torch.device = CPU  # where the states computed, and where those on disk go back
    last: MaskedStates | None = None  # the last mask evaluated on the set, to resume from

    @property
    def nbytes(self) -> int:
        last = self.last.nbytes if self.last is not None else 0
        return _nbytes(self.states) + last

    def batches(self, first_changed: int) -> Iterator[tuple[list[torch.Tensor], Batch]]:
        """(layer inputs 0..k, batch without waveforms) per batch, k = the deepest unchanged
        input available."""
        upto = min(first_changed, self.depth)
        if self.path is None:
            for states, extras in zip(self.states, self.extras, strict=True):
                yield states[: upto + 1], extras
            return
        with safe_open(str(self.path), framework="pt", device=str(self.device)) as f:
            for i, extras in enumerate(self.extras):
                yield [f.get_tensor(f"b{i}")], extras


@dataclass
class MaskedStates:
    """A mask's raw states on a clip set (per batch, inputs of layers 0..n_layers): a sweep's
    next mask, which differs from it only from some layer on, starts from there."""

    mask: torch.Tensor  # (L, H) bool on the upstream's grid
    states: list[list[torch.Tensor]]

    @property
    def nbytes(self) -> int:
        return _nbytes(self.states)

    def shared_layers(self, mask: torch.Tensor, kept: list[list[int]]) -> int:
        """Layers, from the first, where `mask` keeps the same heads as this one (n_layers:
        all), i.e. the deepest layer input the two masks' forwards share."""
        for layer, heads in enumerate(kept):
            if not torch.equal(mask[layer, heads].bool(), self.mask[layer, heads]):
                return layer
        return len(kept)


def _nbytes(states: list[list[torch.Tensor]]) -> int:
    # a resumed forward's unchanged inputs are the source's tensors: counted twice, to be safe
    return sum(t.numel() * t.element_size() for batch in states for t in batch)


def _tensor_digest(digest: Any, tensor: torch.Tensor) -> None:
    tensor = tensor.detach().contiguous().cpu()
    digest.update(f"{tuple(tensor.shape)}{tensor.dtype}".encode())
    digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")


def upstream_digest(upstream: Upstream) -> str:
    """sha1 of what decides the upstream's outputs: name, kept heads, parameters, buffers."""
    digest = hashlib.sha1(f"{upstream.name}{getattr(upstream, 'kept_heads', None)}".encode())
    for name, tensor in [*upstream.named_parameters(), *upstream.named_buffers()]:
        digest.update(name.encode())
        _tensor_digest(digest, tensor)
    return digest.hexdigest()


def _fingerprint(upstream: Upstream) -> tuple:
    """Cheap identity of the upstream's current weights: in-place updates bump `_version`."""
    tensors = [*upstream.parameters(), *upstream.buffers()]
    kept = str(getattr(upstream, "kept_heads", None))
    return (id(upstream), kept, *(t._version for t in tensors))


def has_context_hooks(upstream: Upstream) -> bool:
    """True while a `Heads` context manager (mask, gate, bottleneck) is attached: features
    computed then are not the unmasked ones, so they must be neither cached nor reused."""
    return any(block.out_proj._forward_pre_hooks for block in upstream.attention_blocks())


class LayerCache:
    """Unmasked layer inputs of fixed clip sets, keyed by clips, upstream and precision."""

    def __init__(self, budget_bytes: int = DEFAULT_BUDGET_BYTES, disk_dir: Path | None = None):
        self.budget_bytes = budget_bytes
        self.disk_dir = Path(disk_dir) if disk_dir is not None else None
        self._entries: dict[str, CachedSet] = {}  # clip-set digest -> its current entry
        self._datasets: dict[tuple[int, int], tuple[Dataset, str]] = {}
        self._upstreams: dict[tuple, str] = {}

    @property
    def nbytes(self) -> int:
        return sum(entry.nbytes for entry in self._entries.values())

    def get(
        self,
        model: TaskModel,
        dataset: Dataset,
        precision: str,
        batch_size: int = 64,
    ) -> CachedSet | None:
        """The set's entry (the dataset batched by the model's `collate`), computing it on
        first use (or after a change); None when even its layer-0 inputs exceed the budget and
        there is no disk folder."""
        upstream = model.upstream
        clips = self._clips(model, dataset, batch_size)
        fingerprint = _fingerprint(upstream)
        if fingerprint not in self._upstreams:
            self._upstreams[fingerprint] = upstream_digest(upstream)
        key = hashlib.sha1(f"{clips}{self._upstreams[fingerprint]}{precision}".encode()).hexdigest()
        entry = self._entries.get(clips)
        if entry is not None and entry.key == key:
            return entry
        self._entries.pop(clips, None)  # the old entry is invalid now: free its memory first
        entry = self._compute(upstream, model.batches(dataset, batch_size), key, precision)
        if entry is not None:
            self._entries[clips] = entry
        return entry

    def can_resume(self, entry: CachedSet) -> bool:
        """Whether `entry` may keep a mask's raw states: every layer input of it is in memory,
        and the budget has room for as many again (a mask's states have the same shapes),
        besides the previous mask's, which they replace."""
        if entry.path is not None or entry.depth == 0:
            return False
        others = self.nbytes - (entry.last.nbytes if entry.last is not None else 0)
        return others + _nbytes(entry.states) <= self.budget_bytes

    def remember(
        self, entry: CachedSet, mask: torch.Tensor, states: list[list[torch.Tensor]] | None
    ) -> None:
        """`mask`'s raw states (None: not kept, `can_resume`) become `entry`'s resume point,
        replacing the previous mask's."""
        entry.last = None if states is None else MaskedStates(mask.detach().bool().clone(), states)

    def _clips(self, model: TaskModel, dataset: Dataset, batch_size: int) -> str:
        """Digest of the clips as batched; read once per dataset object. The batches are not
        kept (their waveforms are what the cache replaces): a recomputation collates again."""
        ident = (id(dataset), batch_size)
        if ident not in self._datasets:
            digest = hashlib.sha1(str(batch_size).encode())
            for batch in model.batches(dataset, batch_size):
                for part in (batch.waves, batch.lengths, batch.targets):
                    if isinstance(part, torch.Tensor):
                        _tensor_digest(digest, part)
                    else:
                        digest.update(repr(part).encode())
            # the dataset stays referenced, so its id cannot be reused by another object
            self._datasets[ident] = (dataset, digest.hexdigest())
        return self._datasets[ident][1]

    @torch.no_grad()
    def _compute(
        self, upstream: Upstream, batches: Iterable[Batch], key: str, precision: str
    ) -> CachedSet | None:
        device = module_device(upstream)
        entry = CachedSet(key, depth=upstream.n_layers, extras=[], device=device)
        free = self.budget_bytes - self.nbytes
        with autocast(precision, device.type):
            for batch in batches:
                entry.states.append(upstream.layer_inputs(batch.waves)[: entry.depth + 1])
                entry.extras.append(batch.without_waves())
                if entry.depth and entry.nbytes > free:  # every layer does not fit: layer 0
                    entry.depth, entry.states = 0, [states[:1] for states in entry.states]
        if entry.nbytes <= free:
            return entry
        if self.disk_dir is None:
            return None
        path = self.disk_dir / f"layer-inputs-{key}.safetensors"
        if not path.is_file():
            save_tensors(path, {f"b{i}": batch[0] for i, batch in enumerate(entry.states)})
        entry.states, entry.path = [], path
        return entry
