"""The Upstream interface: a pretrained speech encoder seen as hidden states plus attention blocks.

This package (`hib.upstream`) is the only place that knows model internals. Everything above it
(heads, methods, training) sees an `Upstream`: waveforms in, one hidden state per layer out,
and a list of `AttentionBlock`s where the heads live.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class AttentionBlock:
    """One self-attention block of the upstream.

    `module` computes attention and owns `q_proj`, `k_proj`, `v_proj`, `out_proj` (nn.Linear,
    heads stacked along the output rows of q/k/v and the input columns of out_proj) and a
    `num_heads` attribute. The per-head context is the input of `out_proj`, reshaped to
    (B, T, num_heads, head_dim). Attention weights come back from the upstream's forward with
    `output_attentions=True`.
    """

    layer: int
    module: nn.Module
    head_dim: int

    @property
    def num_heads(self) -> int:
        return int(self.module.num_heads)

    @property
    def q_proj(self) -> nn.Linear:
        return self.module.q_proj

    @property
    def k_proj(self) -> nn.Linear:
        return self.module.k_proj

    @property
    def v_proj(self) -> nn.Linear:
        return self.module.v_proj

    @property
    def out_proj(self) -> nn.Linear:
        return self.module.out_proj


@dataclass
class UpstreamOutput:
    # n_layers + 1 tensors (B, T, D): input embedding, then layers
    hidden_states: list[torch.Tensor]
    attentions: list[torch.Tensor] | None = None  # n_layers tensors (B, heads, T, T) when asked


class Upstream(nn.Module):
    """Waveform (B, 16000*s) float32 at 16 kHz -> `UpstreamOutput`.

    Subclasses set `name`, `hidden_size` and implement `forward` and `attention_blocks`.
    """

    name: str = "upstream"
    hidden_size: int
    sample_rate: int = 16000

    def forward(self, waveforms: torch.Tensor, output_attentions: bool = False) -> UpstreamOutput:
        raise NotImplementedError

    def attention_blocks(self) -> list[AttentionBlock]:
        raise NotImplementedError

    def freeze(self) -> Upstream:
        """No parameter trains and eval() is on; gradients still flow to inputs and head gates."""
        self.requires_grad_(False)
        return self.eval()

    @property
    def n_layers(self) -> int:
        return len(self.attention_blocks())

    @property
    def heads_per_layer(self) -> list[int]:
        return [b.num_heads for b in self.attention_blocks()]

    def describe(self) -> dict:
        """What results.json records about the upstream."""
        heads = self.heads_per_layer
        return {"name": self.name, "n_layers": len(heads), "n_heads": max(heads, default=0)}
