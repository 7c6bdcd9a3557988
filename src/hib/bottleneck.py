"""The per-head variational information bottleneck (method.md, "HIB, as this project defines it").

For head (l, h) with context C (B, T, d), training mean mu and std sigma (floored at 0.01):

    C~ = (C - mu) / sigma,  lambda = sigmoid(alpha),  Z~ = lambda C~ + (1 - lambda) eps,
    Z = sigma Z~ + mu  -> fed to W_O instead of C.

Per element KL(N(lambda c~, (1-lambda)^2) || N(0, 1)) =
    1/2 [(lambda c~)^2 + (1-lambda)^2 - 1 - 2 ln(1-lambda)],
and the head's capacity is E_{x,t}[sum over channels of that KL] / ln 2, in bits per frame.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from hib.distributed import Part
from hib.errors import HibError
from hib.heads import Heads

SIGMA_FLOOR = 0.01
ALPHA_INIT = 5.0


def gaussian_kl(c_tilde: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """Elementwise KL( N(lam c~, (1-lam)^2) || N(0,1) ), in nats."""
    one_minus = (1 - lam).clamp(min=1e-6)
    return 0.5 * ((lam * c_tilde) ** 2 + one_minus**2 - 1 - 2 * torch.log(one_minus))


def _noise(ctx: torch.Tensor, generator: torch.Generator | None, part: Part | None):
    """eps like `ctx`; for a process's part of a global batch, its rows of the draw for the
    whole batch (the last ones for a stand-in), so the noise is the one a single process
    draws (for clips of equal length; padded ones differ in the frames drawn)."""
    if part is None:
        return torch.randn(ctx.shape, generator=generator, dtype=ctx.dtype)
    whole = torch.randn((part.total, *ctx.shape[1:]), generator=generator, dtype=ctx.dtype)
    start = part.start if part.count else part.total - len(ctx)
    return whole[start : start + len(ctx)]


ALPHA_SHARING = ("channel", "head")


def check_alpha_per(value: str) -> str:
    if value not in ALPHA_SHARING:
        raise HibError(f"alpha_per '{value}': choose from {', '.join(ALPHA_SHARING)}")
    return value


class HeadBottleneck(nn.Module):
    """Learnable alpha per (layer, head, channel), or per (layer, head) with `alpha_per="head"`
    (one lambda shared by a head's channels: a head passes or loses its channels together);
    attach it to a model's heads with `attached`."""

    def __init__(self, heads: Heads, alpha_init: float = ALPHA_INIT, alpha_per: str = "channel"):
        super().__init__()
        check_alpha_per(alpha_per)
        if heads.stats is None:
            raise ValueError("the bottleneck needs head statistics (Heads.fit_stats)")
        self.heads = heads
        self.register_buffer("mu", heads.stats.mean.to(heads.device, copy=True))
        self.register_buffer("sigma", heads.stats.std.to(heads.device).clamp(min=SIGMA_FLOOR))
        shape = self.mu.shape if alpha_per == "channel" else (*self.mu.shape[:2], 1)
        self.alpha = nn.Parameter(
            torch.full(shape, alpha_init, dtype=self.mu.dtype, device=self.mu.device)
        )
        self._capacity: list[torch.Tensor | None] = []
        self._part: Part | None = None

    def lambdas(self) -> torch.Tensor:
        """(L, H, d): lambda of every channel (equal across a head's channels when shared)."""
        return torch.sigmoid(self.alpha).expand_as(self.mu)

    def _apply(self, layer: int, ctx: torch.Tensor, generator: torch.Generator | None):
        kept = self.heads.kept[layer]
        mu, sigma = self.mu[layer, kept], self.sigma[layer, kept]  # (h, d)
        lam = torch.sigmoid(self.alpha[layer, kept])
        c_tilde = (ctx - mu) / sigma
        # drawn by the CPU generator on every device: the same noise, so the same fit, anywhere
        eps = _noise(ctx, generator, self._part).to(ctx.device)
        z_tilde = lam * c_tilde + (1 - lam) * eps
        kl = gaussian_kl(c_tilde, lam).sum(-1)  # (B, T, h)
        cap = ctx.new_zeros(self.heads.n_heads)
        index = torch.tensor(kept, device=ctx.device)
        cap = cap.index_put((index,), kl.mean(dim=(0, 1)) / math.log(2))
        self._capacity[layer] = cap
        return sigma * z_tilde + mu

    @contextmanager
    def attached(
        self, generator: torch.Generator | None = None, part: Part | None = None
    ) -> Iterator[HeadBottleneck]:
        """While inside, every forward of the upstream runs through the bottleneck; `part`:
        the rows of a global batch the forward's clips are (hib.distributed)."""
        self._capacity = [None] * self.heads.n_layers
        self._part = part
        with self.heads.replace_context(lambda layer, ctx: self._apply(layer, ctx, generator)):
            yield self

    def capacity(self) -> torch.Tensor:
        """(L, H) bits per frame of the last forward (differentiable)."""
        empty = self.alpha.new_zeros(self.heads.n_heads)  # a layer without heads
        rows = [c if c is not None else empty for c in self._capacity]
        return torch.stack(rows)
