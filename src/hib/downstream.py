"""The keyword-spotting model: an upstream plus SUPERB's utterance-level downstream.

SUPERB KS downstream: learnable softmax-weighted sum over all hidden layers (each layer
normalised first, so a layer's scale does not decide its weight), linear to 256, mean pooling
over time, linear to the classes. The upstream is frozen unless the config fine-tunes it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hib.heads import Heads, HeadStats
from hib.upstream.base import Upstream


class KSHead(nn.Module):
    """Task head on top of the upstream's hidden states (the part trained in SUPERB)."""

    def __init__(self, n_hidden_states: int, hidden_size: int, n_classes: int, proj_dim: int = 256):
        super().__init__()
        self.layer_weights = nn.Parameter(torch.zeros(n_hidden_states))
        self.proj = nn.Linear(hidden_size, proj_dim)
        self.classifier = nn.Linear(proj_dim, n_classes)

    def pool(self, hidden_states: list[torch.Tensor]) -> torch.Tensor:
        """Weighted layer sum -> (B, T, D)."""
        stacked = torch.stack(hidden_states, dim=0)  # (L, B, T, D)
        stacked = F.layer_norm(stacked, stacked.shape[-1:])
        weights = torch.softmax(self.layer_weights, dim=0)
        return torch.einsum("l,lbtd->btd", weights, stacked)

    def forward(self, hidden_states: list[torch.Tensor]) -> torch.Tensor:
        x = self.proj(self.pool(hidden_states))
        return self.classifier(x.mean(dim=1))


class KSModel(nn.Module):
    """Waveforms (B, 16000) -> class logits (B, n_classes)."""

    def __init__(self, upstream: Upstream, head: KSHead):
        super().__init__()
        self.upstream = upstream
        self.head = head
        self.head_stats: HeadStats | None = None  # context mean/std per head, set after training

    def heads(self) -> Heads:
        """The upstream's heads, with this model's statistics (for mean fill and HIB)."""
        return Heads(self.upstream, self.head_stats)

    @classmethod
    def build(cls, upstream: Upstream, n_classes: int, proj_dim: int = 256) -> KSModel:
        n_hidden = upstream.n_layers + 1
        return cls(upstream, KSHead(n_hidden, upstream.hidden_size, n_classes, proj_dim))

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self.head(self.upstream(waveforms).hidden_states)

    def from_states(self, states: list[torch.Tensor]) -> torch.Tensor:
        """Logits from known raw layer inputs (Upstream.layer_inputs): the forward of the
        layers after them only, for methods that mask one layer's heads at a time."""
        return self.head(self.upstream.forward_from(states).hidden_states)

    def freeze_upstream(self, frozen: bool = True) -> None:
        for p in self.upstream.parameters():
            p.requires_grad_(not frozen)
