"""attattr as first written: every integrated-gradient step runs the whole model from the waveform.

Kept as the reference the cached implementation (hib.methods.attattr) must reproduce, in
tests/methods/test_attattr.py and benchmarks/attattr_speed.py.
"""

from __future__ import annotations

import torch

from hib.downstream import UtteranceClassifier
from hib.heads import Heads
from hib.methods.attattr import AttAttr


def reference_scores(method: AttAttr, model: UtteranceClassifier, data) -> torch.Tensor:
    """The scores `method.score(model, data)` gave before layer inputs were cached."""
    model.eval()
    total: list[torch.Tensor] | None = None
    for batch in method.batches(model, data):
        waves = batch.waves
        best = [a.amax(dim=(2, 3)).sum(dim=0) for a in _attributions(method, model, waves)]
        total = best if total is None else [t + b for t, b in zip(total, best, strict=True)]
    return model.heads().on_grid(total or [])


def _attributions(
    method: AttAttr, model: UtteranceClassifier, waves: torch.Tensor
) -> list[torch.Tensor]:
    heads = model.heads()
    with torch.no_grad():
        target = model(waves).argmax(dim=-1)
        with heads.capture_values() as values:
            maps = heads.attention_maps(waves)
    out = []
    for layer, attn in enumerate(maps):
        grad_sum = torch.zeros_like(attn)
        if heads.kept[layer]:
            for k in range(1, method.steps + 1):
                grad = _context_grad(model, heads, waves, target, layer, k / method.steps)
                grad_sum += torch.einsum("bthd,bshd->bhts", grad, values[layer][0])
        out.append(attn * grad_sum / method.steps)
    return out


def _context_grad(
    model: UtteranceClassifier,
    heads: Heads,
    waves: torch.Tensor,
    target: torch.Tensor,
    layer: int,
    alpha: float,
) -> torch.Tensor:
    def scale(at: int, ctx: torch.Tensor) -> torch.Tensor:
        return ctx * alpha if at == layer else ctx

    with heads.replace_context(scale), heads.probed() as probes:
        prob = model(waves).softmax(dim=-1).gather(1, target[:, None]).sum()
    return torch.autograd.grad(prob, probes[layer][0])[0]
