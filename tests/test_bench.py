"""The FLOP model behind `hib bench prune` and the throughput benchmark."""

from __future__ import annotations

import torch

from hib.bench import count_flops
from hib.upstream import Upstream


def test_fused_attention_flops_are_counted_like_eager_ones(tiny_upstream: Upstream):
    """torch's counter alone counts CPU SDPA as 0 FLOPs, which would skew every ideal."""
    waves = 0.1 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fused = count_flops(lambda: tiny_upstream(waves))
        tiny_upstream.attn_implementation = "eager"
        eager = count_flops(lambda: tiny_upstream(waves))
    q = torch.randn(2, 4, 50, 8)
    products = count_flops(lambda: torch.nn.functional.scaled_dot_product_attention(q, q, q))
    assert products == 2 * (2 * 2 * 4 * 50 * 50 * 8)  # q k^T and A v
    assert fused == eager > 0
