"""Whisper's decoder attention heads as head sources for `hib.heads.Heads`.

`Heads` needs from its source only `attention_blocks()` and the `kept_heads` / `head_grid`
attributes it keeps there (physical pruning updates them), so one model has one source object
per scope. Rows of the head grid:

- decoder: per decoder layer its self-attention, then its cross-attention (`encoder_attn`):
  8 rows x 6 heads on tiny.en.
- all: the encoder's rows, then the decoder's. Its `kept_heads` is a view on the two parts'
  own lists, so what is pruned through one scope is seen through the others.

Neither runs on waveforms alone (the decoder needs transcripts): statistics come from
`Heads.fit_stats(..., forward=asr.stats_forward)`, and attention maps are encoder-only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from torch import nn

from hib.errors import UpstreamError
from hib.upstream.base import AttentionBlock, mark_unpruned


class _NoWaveformForward:
    """A head source that `Heads` may not run by itself: one clear line instead of a traceback."""

    name: str

    def __call__(self, *args: Any, output_attentions: bool = False, **kwargs: Any) -> None:
        if output_attentions:
            raise UpstreamError(f"{self.name}: attention maps are only available for encoder heads")
        raise UpstreamError(
            f"{self.name}: decoder heads need transcripts: pass forward=asr.stats_forward"
        )


class DecoderHeads(_NoWaveformForward):
    """Each decoder layer's self-attention row, then its cross-attention row."""

    def __init__(self, decoder: nn.Module, name: str):
        self.decoder = decoder
        self.name = name

    def attention_blocks(self) -> list[AttentionBlock]:
        modules = [
            m for layer in self.decoder.layers for m in (layer.self_attn, layer.encoder_attn)
        ]
        return [
            AttentionBlock(layer=i, module=m, head_dim=m.head_dim) for i, m in enumerate(modules)
        ]


class JoinedHeads(_NoWaveformForward):
    """Several head sources as one grid: their rows one after the other."""

    def __init__(self, parts: Sequence[Any], name: str):
        self.parts = list(parts)
        self.name = name

    def attention_blocks(self) -> list[AttentionBlock]:
        blocks = [b for part in self.parts for b in part.attention_blocks()]
        return [replace(b, layer=i) for i, b in enumerate(blocks)]

    @property
    def kept_heads(self) -> list[list[int]]:
        for part in self.parts:
            mark_unpruned(part)
        return _JoinedRows(self.parts)

    @property
    def head_grid(self) -> tuple[int, int]:
        for part in self.parts:
            mark_unpruned(part)
        return (
            sum(p.head_grid[0] for p in self.parts),
            max(p.head_grid[1] for p in self.parts),
        )


class _JoinedRows(list):
    """The parts' `kept_heads` concatenated; assigning a row writes it through to its part."""

    def __init__(self, parts: Sequence[Any]):
        super().__init__(row for part in parts for row in part.kept_heads)
        self._where = [(part, i) for part in parts for i in range(len(part.kept_heads))]

    def __setitem__(self, index: int, row: list[int]) -> None:  # type: ignore[override]
        super().__setitem__(index, row)
        part, i = self._where[index]
        part.kept_heads[i] = row


def remap_alignment_heads(
    pairs: Sequence[Sequence[int]], kept_cross: Sequence[Sequence[int]]
) -> tuple[list[list[int]], list[list[int]]]:
    """Whisper's alignment heads ([decoder layer, cross-attention head]) after pruning.

    `kept_cross[layer]` lists the original cross-attention heads the layer still has, in their
    current order (`WhisperASR.kept_cross_heads()`). Returns (remapped, dropped): each kept
    pair with its head renumbered to its position in the pruned layer, and the original pairs
    whose head was removed. The exporter should write `remapped` as the pruned model's
    `generation_config.alignment_heads` (removing the key if it is empty: token timestamps then
    have no heads to read) and record `dropped` and the original list beside it, since the
    timestamps of the pruned model rest on fewer heads.
    """
    remapped, dropped = [], []
    for layer, head in pairs:
        if not 0 <= layer < len(kept_cross):
            raise UpstreamError(
                f"alignment head {[layer, head]} is outside the {len(kept_cross)}-layer decoder"
            )
        kept = list(kept_cross[layer])
        if head in kept:
            remapped.append([layer, kept.index(head)])
        else:
            dropped.append([layer, head])
    return remapped, dropped
