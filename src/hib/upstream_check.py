"""`hib upstream check SPEC`: is my checkpoint supported, and does pruning it stay exact?

Loads an upstream (a built-in name, a local folder, a hub id), runs a random 1 s input, and
compares a seeded half of its heads masked through hooks with the same heads removed
physically (mean fill, statistics from that input): the first thing to run on a new model.
"""

from __future__ import annotations

import copy

import torch

from hib.bench import removal_diff
from hib.heads import Heads
from hib.upstream import load_upstream

CHECK_SECONDS = 1.0


def check_upstream(spec: str, seed: int = 0) -> dict:
    """{"name", "model_type", "n_layers", "n_heads", "hidden_size",
    "mask_vs_removal_max_abs_diff"} for `spec`; an UpstreamError line when unsupported."""
    upstream = load_upstream(spec)
    generator = torch.Generator().manual_seed(seed)
    waves = 0.1 * torch.randn(2, int(upstream.sample_rate * CHECK_SECONDS), generator=generator)
    heads = Heads(upstream)
    with torch.no_grad():
        heads.stats = heads.fit_stats(iter([waves]), max_clips=len(waves))
    mask = torch.rand(heads.shape, generator=generator) > 0.5
    mask[0] = False  # a layer without any head left: the hardest case for removal
    pruned = Heads(copy.deepcopy(upstream), heads.stats)
    pruned.prune(mask, "mean")
    return {
        "name": upstream.name,
        "model_type": upstream.model_type,
        "n_layers": heads.n_layers,
        "n_heads": heads.n_heads,
        "hidden_size": upstream.hidden_size,
        "mask_vs_removal_max_abs_diff": removal_diff(heads, pruned, mask, waves, "mean"),
    }
