"""The Upstream interface: a pretrained speech encoder seen as hidden states plus attention blocks.

This package (`hib.upstream`) is the only place that knows model internals. Everything above it
(heads, methods, training) sees an `Upstream`: waveforms in, one hidden state per layer out,
and a list of `AttentionBlock`s where the heads live.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass
class AttentionBlock:
    """One self-attention block of the upstream.

    `module` computes attention and owns `q_proj`, `k_proj`, `v_proj`, `out_proj` (nn.Linear,
    heads stacked along the output rows of q/k/v and the input columns of out_proj) and a
    `num_heads` attribute. The per-head context is the input of `out_proj`, reshaped to
    (B, T, num_heads, head_dim), whichever attention kernel computed it. Attention weights come
    back from the upstream's forward with `output_attentions=True`. A module with more per-head
    state than its projections (WavLM's gated position bias) has `keep_heads(local indices)`,
    which physical pruning calls after slicing the projections.
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

    A forward is split where head masks start to matter: `embed` (waveform -> input of layer 0:
    log-mel, convolutions, positions; no head can change it), then `run_layer` per layer, then
    `finish` on the last state (a final layer norm, where the model has one). `forward_from`
    continues a forward from known layer inputs, so evaluation and the methods that run many
    forwards over fixed clips can skip what a mask cannot change (hib.layer_cache).

    Attention runs fused (`attn_implementation`, PyTorch's scaled_dot_product_attention: no
    (B, h, T, S) weight matrix is kept) unless a forward asks for the weights, which only the
    eager kernel returns; both hand `out_proj` the same per-head context layout, so head hooks,
    masks, gates and pruning see no difference. Modules without a transformers `config` (e.g.
    a hand-written attention) run as they are.

    Subclasses set `name`, `hidden_size` and implement `embed`, `run_layer` and
    `attention_blocks` (and `finish` where needed).
    """

    name: str = "upstream"
    hidden_size: int
    model_type: str = "custom"  # the architecture (transformers' config.model_type)
    sample_rate: int = 16000
    attn_implementation: str = "sdpa"
    """transformers' attention kernel for forwards without weights; "eager" is the original path."""
    residual_attention: bool = True
    """Each layer adds its attention block's output to the layer's input (true of every
    transformers encoder here): the residual stream compensation reconstructs (hib.compensate)."""

    def feed_forward_out(self, index: int) -> nn.Linear | None:
        """The linear layer whose output layer `index` adds to its residual stream last (the
        feed-forward's output projection of a pre-LN layer: output = stream + this(...)), which
        compensation may re-fit (hib.compensate, kind `ffn`); None where a norm follows it."""
        return None

    def embed(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(B, N) waveforms -> (B, T, D), the input of layer 0."""
        raise NotImplementedError

    def run_layer(self, index: int, hidden: torch.Tensor) -> torch.Tensor:
        """Layer `index` on its input (B, T, D) -> its output (B, T, D)."""
        raise NotImplementedError

    def finish(self, hidden: torch.Tensor) -> torch.Tensor:
        """What follows the last layer before it is reported (identity unless overridden)."""
        return hidden

    def output_frames(self, lengths: torch.Tensor) -> torch.Tensor:
        """Positions (B,) a clip of `lengths` samples fills, for pooling over padded batches."""
        raise NotImplementedError(f"{self.name}: no frame count for padded clips")

    def layer_inputs(self, waveforms: torch.Tensor) -> list[torch.Tensor]:
        """The n_layers + 1 raw states: each layer's input, then the last layer's output."""
        return self.run_layers([self.embed(waveforms)])

    def run_layers(
        self, states: list[torch.Tensor], output_attentions: bool = False
    ) -> list[torch.Tensor]:
        """Extend known raw states (inputs of layers 0..k) through the remaining layers."""
        states = list(states)
        with self.attention_kernel(output_attentions):
            for index in range(len(states) - 1, self.n_layers):
                states.append(self.run_layer(index, states[-1]))
        return states

    @contextmanager
    def attention_kernel(self, output_attentions: bool = False) -> Iterator[None]:
        """Inside the block the attention blocks run eager (weights wanted) or the fast kernel.

        transformers' attention modules pick their kernel from `config._attn_implementation` at
        every call, so it is set on their configs for the block only; a config the encoder
        shares with a decoder (Whisper) is left as it was for the decoder's own calls.
        """
        wanted = "eager" if output_attentions else self.attn_implementation
        configs = {id(c): c for b in self.attention_blocks() if (c := _config(b.module))}
        before = {key: c._attn_implementation for key, c in configs.items()}
        try:
            for config in configs.values():
                config._attn_implementation = wanted
            yield
        finally:
            for key, config in configs.items():
                config._attn_implementation = before[key]

    def forward_from(
        self, states: list[torch.Tensor], output_attentions: bool = False
    ) -> UpstreamOutput:
        """The forward's output given the inputs of layers 0..k (k = len(states) - 1)."""
        first = len(states) - 1
        recorded = self.attention_blocks()[first:] if output_attentions else []
        with _recorded_attentions([b.module for b in recorded]) as attentions:
            states = self.run_layers(states, output_attentions)
        return UpstreamOutput(self.reported(states), attentions if output_attentions else None)

    def reported(self, states: list[torch.Tensor]) -> list[torch.Tensor]:
        """The hidden states a forward reports from its n_layers + 1 raw states."""
        return [*states[:-1], self.finish(states[-1])]

    def forward(self, waveforms: torch.Tensor, output_attentions: bool = False) -> UpstreamOutput:
        return self.forward_from([self.embed(waveforms)], output_attentions)

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


def _config(module: nn.Module) -> object | None:
    """The transformers config an attention module reads its kernel from, if it has one."""
    config = getattr(module, "config", None)
    return config if hasattr(config, "_attn_implementation") else None


@contextmanager
def _recorded_attentions(modules: list[nn.Module]) -> Iterator[list[torch.Tensor]]:
    """Collect each module's attention weights (its 2nd output) for the length of one forward.

    Eager attention modules of Whisper, wav2vec2, HuBERT and hib's WavLM all return (output,
    weights, ...). Hooks live only inside the block, so nothing is kept on modules that a
    pruner may rebuild.
    """
    weights: list[torch.Tensor] = []
    handles = [
        m.register_forward_hook(lambda _m, _args, out: weights.append(out[1])) for m in modules
    ]
    try:
        yield weights
    finally:
        for handle in handles:
            handle.remove()


def mark_unpruned(source: Any) -> None:
    """Give a head source seen for the first time its `kept_heads` and `head_grid` (nothing pruned).

    `hib.heads.Heads` stores both on its source; physical pruning then updates them.
    """
    if not hasattr(source, "kept_heads"):
        blocks = source.attention_blocks()
        source.kept_heads = [list(range(b.num_heads)) for b in blocks]
        source.head_grid = (len(blocks), max(b.num_heads for b in blocks))
