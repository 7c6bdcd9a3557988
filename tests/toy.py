"""A toy upstream with a known answer: one attention layer where a single head carries the label.

Frames are noise except channel 0, which holds +/-1 by class. Only the chosen head's value
projection reads channel 0, and the upstream exposes only the attention output (no residual),
so the label reaches the task head through that head alone (or through it and a duplicate
head, on request).
"""

from __future__ import annotations

import torch
from torch import nn

from hib.downstream import UtteranceClassifier
from hib.upstream.base import AttentionBlock, Upstream, UpstreamOutput


class ToyAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.q_proj, self.k_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.v_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, -1, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.num_heads, self.head_dim).transpose(1, 2)
        attn = torch.softmax(q @ k.transpose(-1, -2) / self.head_dim**0.5, dim=-1)
        ctx = (attn @ v).transpose(1, 2).reshape(b, t, -1)
        return self.out_proj(ctx), attn


class ToyUpstream(Upstream):
    name = "toy"
    residual_attention = False  # a layer's output is its attention output alone

    def __init__(
        self,
        dim: int = 8,
        num_heads: int = 2,
        informative_head: int = 0,
        frames: int = 4,
        duplicate: int | None = None,
    ):
        super().__init__()
        self.hidden_size, self.frames = dim, frames
        self.attn = ToyAttention(dim, num_heads)
        d = dim // num_heads
        with torch.no_grad():
            for p in self.attn.parameters():
                p.zero_()
            self.attn.v_proj.weight.copy_(torch.zeros(dim, dim))
            for h in range(num_heads):  # head h reads channel 1 + h ...
                self.attn.v_proj.weight[h * d, 1 + h] = 1.0
            # ... except the informative head (and its duplicate), which reads the label channel 0
            for h in {informative_head, informative_head if duplicate is None else duplicate}:
                self.attn.v_proj.weight[h * d] = 0.0
                self.attn.v_proj.weight[h * d, 0] = 1.0
            self.attn.out_proj.weight.copy_(torch.eye(dim))
        for p in self.parameters():
            p.requires_grad_(False)

    def embed(self, waveforms: torch.Tensor) -> torch.Tensor:
        return waveforms.view(waveforms.shape[0], self.frames, self.hidden_size)

    def run_layer(self, index: int, hidden: torch.Tensor) -> torch.Tensor:
        return self.attn(hidden)[0]

    def forward_from(
        self, states: list[torch.Tensor], output_attentions: bool = False
    ) -> UpstreamOutput:
        out = super().forward_from(states, output_attentions)
        # no input embedding is reported: nothing bypasses the heads
        out.hidden_states[0] = torch.zeros_like(out.hidden_states[0])
        return out

    def attention_blocks(self) -> list[AttentionBlock]:
        return [AttentionBlock(layer=0, module=self.attn, head_dim=self.attn.head_dim)]


def toy_data(n: int, dim: int = 8, frames: int = 4, seed: int = 0):
    """Waveform-shaped inputs (n, frames*dim) and binary labels carried by channel 0."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, frames, dim, generator=g)
    x[:, :, 0] = labels[:, None].float() * 2 - 1
    return x.reshape(n, -1), labels


def trained_toy_model(
    informative_head: int = 0, num_heads: int = 2, duplicate: int | None = None
) -> UtteranceClassifier:
    """Toy upstream + a task head trained to read it; head stats fitted. `duplicate`: a second
    head with the informative head's weights (the label then reaches the task head twice)."""
    torch.manual_seed(0)
    upstream = ToyUpstream(
        num_heads=num_heads, informative_head=informative_head, duplicate=duplicate
    )
    model = UtteranceClassifier.build(upstream, 2, proj_dim=8)
    x, y = toy_data(256)
    opt = torch.optim.Adam(model.head.parameters(), lr=0.05)
    for _ in range(100):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.head_stats = model.heads().fit_stats(iter(x.split(64)), max_clips=256)
    return model
