"""WavLM's self-attention computed head by head, so WavLM heads can be seen, masked and removed.

transformers' `WavLMAttention` runs in one call of `F.multi_head_attention_forward`: forward
hooks on its projections never fire, its per-head context never reaches `out_proj` as a tensor
of its own, and the weights it returns are averaged over heads. `WavLMHeadAttention` computes
the same function step by step: q/k/v projections, the gated relative position bias, the key
padding mask, softmax, then `out_proj` on the per-head context (B, T, heads * head_dim), where
`hib.heads` hooks. `per_head_attention` swaps it in for every layer of a loaded `WavLMModel`.

WavLM's relative position bias: layer 0 owns an embedding (num_buckets, heads); the bias of
head h for a query at i and a key at j is its row at the bucket of the offset j - i (exact for
short offsets, log-spaced up to `max_distance`, separately for keys before and after the
query). Every layer reuses layer 0's bias, each scaling head h's row by a gate computed from
the layer's input: the input is split into as many chunks of head_dim as there were heads,
chunk h goes through `gru_rel_pos_linear` (head_dim -> 8, shared by the heads), two sigmoids
a, b of sums of 4 come out, and gate = a * (b * gru_rel_pos_const[h] - 1) + 2.

What each head owns beyond its projection rows and out_proj columns is therefore its gate
constant, its input chunk and its row of the shared bias. Each module records the original
head index of its current heads (`head_index`) and `keep_heads`, which `Heads.prune` calls,
slices it and the gate constants. The embedding is left whole: it serves every layer, and a
head index removed from one layer is still used by the others.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from hib.errors import UpstreamError


def relative_position_buckets(
    offsets: torch.Tensor, num_buckets: int, max_distance: int
) -> torch.Tensor:
    """The bucket (long) of each key - query offset, as WavLM indexes its position embedding.

    Half of the buckets hold keys at or before the query, half the keys after it. In each half,
    distances below a quarter of the buckets get a bucket each; longer ones share buckets
    spaced by log(distance), the last bucket taking everything from `max_distance` on.
    """
    half = num_buckets // 2
    exact = half // 2
    distance = offsets.abs()
    # in float32 and in this order, so a distance on a bucket boundary falls where WavLM's does
    scaled = torch.log(distance.float() / exact) / math.log(max_distance / exact)
    far = (exact + scaled * (half - exact)).to(torch.long).clamp(max=half - 1)
    return (offsets > 0).to(torch.long) * half + torch.where(distance < exact, distance, far)


class WavLMHeadAttention(nn.Module):
    """transformers' `WavLMAttention`, per head: same parameters, same outputs.

    Built from a transformers module, whose projections, gate and (layer 0) position embedding
    it takes over under the same names, so the model's state_dict keeps its keys. `positions`
    is layer 0's embedding; only layer 0's module registers it.

    forward(hidden_states (B, T, D), attention_mask (B, T) 1 = frame, 0 = padding, or None,
    position_bias from the previous layer or None) -> (output (B, T, D), attention weights
    (B, heads, T, T) or None, position_bias). The position bias passed on is the ungated one
    of every original head, (original heads, T, T), whatever this layer kept; a layer that gets
    None computes it. Weights come only from the eager kernel (`config._attn_implementation`,
    set per forward by `Upstream.attention_kernel`); otherwise PyTorch's
    scaled_dot_product_attention runs with the gated bias as its additive mask.
    """

    def __init__(self, source: nn.Module, config: object, positions: nn.Embedding, owner: bool):
        super().__init__()
        self.config = config
        self.num_heads = int(source.num_heads)
        self.head_dim = int(source.head_dim)
        self.scaling = self.head_dim**-0.5
        self.dropout = float(source.dropout)
        self.num_buckets = int(source.num_buckets)
        self.max_distance = int(source.max_distance)
        self.q_proj, self.k_proj, self.v_proj = source.q_proj, source.k_proj, source.v_proj
        self.out_proj = source.out_proj
        self.gru_rel_pos_linear = source.gru_rel_pos_linear
        self.gru_rel_pos_const = source.gru_rel_pos_const  # (1, heads, 1, 1)
        if owner:
            self.rel_attn_embed = positions
        else:  # a tuple keeps layer 0's embedding out of this module's parameters and state
            self._shared_positions = (positions,)
        self.register_buffer("head_index", torch.arange(self.num_heads), persistent=False)

    @property
    def positions(self) -> nn.Embedding:
        owned = self._modules.get("rel_attn_embed")
        return owned if owned is not None else self._shared_positions[0]

    def position_bias(self, length: int) -> torch.Tensor:
        """(original heads, T, T): every head's ungated bias for T queries and T keys.

        Offsets run from -(T - 1) to T - 1, so the embedding is read for 2T - 1 offsets only
        and spread over the (T, T) grid by each pair's offset.
        """
        weight = self.positions.weight
        offsets = torch.arange(1 - length, length, device=weight.device)
        table = F.embedding(
            relative_position_buckets(offsets, self.num_buckets, self.max_distance), weight
        )  # (2T - 1, heads)
        steps = torch.arange(length, device=weight.device)
        return table.t()[:, steps[None, :] - steps[:, None] + length - 1]

    def gate(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """(B, heads, T, 1): how much of its position bias each current head gets per query."""
        chunks = hidden_states.unflatten(-1, (-1, self.head_dim))[:, :, self.head_index]
        projected = self.gru_rel_pos_linear(chunks.transpose(1, 2))  # (B, heads, T, 8)
        a, b = torch.sigmoid(projected.unflatten(-1, (2, 4)).sum(-1)).chunk(2, dim=-1)
        return a * (b * self.gru_rel_pos_const - 1.0) + 2.0

    def _split(self, projected: torch.Tensor) -> torch.Tensor:
        return projected.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_bias: torch.Tensor | None = None,
        **_: object,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        batch, length, _width = hidden_states.shape
        if position_bias is None:
            position_bias = self.position_bias(length)
        bias = self.gate(hidden_states) * position_bias[self.head_index]  # (B, heads, T, T)
        if attention_mask is not None:
            padding = attention_mask.ne(1)[:, None, None, :]
            bias = bias.masked_fill(padding, float("-inf"))
        q = self._split(self.q_proj(hidden_states))
        k = self._split(self.k_proj(hidden_states))
        v = self._split(self.v_proj(hidden_states))
        dropout = self.dropout if self.training else 0.0
        weights = None
        if (getattr(self.config, "_attn_implementation", None) or "eager") == "eager":
            weights = torch.softmax((q * self.scaling) @ k.transpose(-1, -2) + bias, dim=-1)
            context = F.dropout(weights, dropout, self.training) @ v
        else:
            context = F.scaled_dot_product_attention(
                q, k, v, attn_mask=bias.to(q.dtype), dropout_p=dropout, scale=self.scaling
            )
        context = context.transpose(1, 2).reshape(batch, length, self.num_heads * self.head_dim)
        return self.out_proj(context), weights, position_bias

    @torch.no_grad()
    def keep_heads(self, local: list[int]) -> None:
        """Keep the per-head state of current heads `local` (after `Heads.prune` sliced the
        projections): their original indices and their gate constants."""
        index = torch.tensor(local, dtype=torch.long, device=self.head_index.device)
        self.head_index = self.head_index[index]
        const = self.gru_rel_pos_const
        self.gru_rel_pos_const = nn.Parameter(
            const[:, index].clone(), requires_grad=const.requires_grad
        )


def per_head_attention(model: nn.Module) -> None:
    """Replace every layer's attention of a transformers `WavLMModel` by `WavLMHeadAttention`.

    The new modules take over the old ones' parameters (nothing is copied, the state_dict keys
    stay) and their train/eval mode; a model already swapped is left as it is.
    """
    layers = model.encoder.layers
    if all(isinstance(layer.attention, WavLMHeadAttention) for layer in layers):
        return
    positions = getattr(layers[0].attention, "rel_attn_embed", None)
    if positions is None:
        raise UpstreamError("WavLM: layer 0 has no relative position embedding")
    for i, layer in enumerate(layers):
        attention = WavLMHeadAttention(layer.attention, model.config, positions, i == 0)
        layer.attention = attention.train(layer.attention.training)
