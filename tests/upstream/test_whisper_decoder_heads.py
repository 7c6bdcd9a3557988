"""Whisper tiny.en's decoder heads through hib.heads: scopes, statistics, removal, gates, alignment.

Teacher-forced checks run on the "short" context (the encoder on the clip only, ~10x cheaper);
greedy transcripts on "30s", the input Whisper was trained on.

Mask = removal: in float64 the logits agree to ~1e-13, so the two are the same function. In
float32 they differ by rounding only: decoder layer outputs by 1-2 ulp (~2e-6 at |x| ~ 12),
which the final layer norm (gains up to ~100) lifts to ~6e-5 on logits of up to ~30 (15 ulp);
2e-4 is the float32 bound, and greedy transcripts must be identical.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from hib.bottleneck import HeadBottleneck
from hib.errors import UpstreamError
from hib.heads import Heads, HeadStats
from hib.upstream.whisper_asr import IGNORE, WhisperASR, load_whisper_asr
from hib.upstream.whisper_heads import remap_alignment_heads
from tests.conftest import spoken_batch

SENTENCES = [
    ("the quick brown fox jumps over the lazy dog", "en-us"),
    ("we will meet at noon", "en-us-nyc"),
]
TINY_EN_ALIGNMENT = [[1, 0], [2, 0], [2, 5], [3, 0], [3, 1], [3, 2], [3, 3], [3, 4]]
ENCODER_ROWS = 4
FLOAT32_LOGITS = 2e-4  # measured 5.6e-5 (module docstring)


def decoder_mask() -> torch.Tensor:
    """Some self and cross heads of the decoder grid, and all of layer 1's cross-attention."""
    mask = torch.ones(8, 6, dtype=torch.bool)
    mask[0, 3] = mask[4, 0] = mask[4, 4] = False  # self-attention of decoder layers 0 and 2
    mask[1, 2] = mask[7, 1] = mask[7, 3] = False  # cross-attention of layers 0 and 3
    mask[3] = False  # layer 1's cross-attention loses every head
    return mask


def all_mask() -> torch.Tensor:
    mask = torch.ones(12, 6, dtype=torch.bool)
    mask[1, 2] = mask[3, 0] = mask[3, 5] = False  # encoder
    mask[6, 1] = mask[9, 0] = False  # decoder self (layer 1), cross (layer 2)
    return mask


@pytest.fixture(scope="module")
def asr(whisper_cache_dir: Path) -> WhisperASR:
    """The unpruned reference model; tests never prune it."""
    return load_whisper_asr("30s", cache_dir=whisper_cache_dir)


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    return spoken_batch(SENTENCES)


@contextmanager
def short(*models: WhisperASR) -> Iterator[None]:
    for model in models:
        model.context = "short"
    try:
        yield
    finally:
        for model in models:
            model.context = "30s"


@pytest.fixture(scope="module")
def stats(asr: WhisperASR, batch) -> HeadStats:
    """Statistics of every head (scope "all") on the 30s context, which transcripts use.

    (Fitted on "short", the cross-attention means do not fit 30 s inputs: the masked model of
    `test_pruned_decoder_equals_mean_mask` then repeats itself up to max_new_tokens.)
    """
    return Heads(asr.head_source("all")).fit_stats([batch], 8, forward=asr.stats_forward)


def decoder_rows(stats: HeadStats) -> HeadStats:
    return HeadStats(stats.mean[ENCODER_ROWS:], stats.std[ENCODER_ROWS:], stats.n_clips)


def logits(model: WhisperASR, batch) -> torch.Tensor:
    waves, lengths, texts = batch
    with torch.no_grad(), short(model):
        return model.teacher_forced(waves.to(model.model.dtype), lengths, texts)[0]


def mask_vs_prune(
    reference: WhisperASR, fresh: WhisperASR, scope: str, mask: torch.Tensor, stats, batch
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits of `reference` with `mask` as a mean fill, and of `fresh` pruned by `mask`."""
    with Heads(reference.head_source(scope), stats).masked(mask):
        expected = logits(reference, batch)
    Heads(fresh.head_source(scope), stats).prune(mask)
    return expected, logits(fresh, batch)


def test_scopes_give_one_source_each(asr: WhisperASR) -> None:
    assert asr.head_source("encoder") is asr.upstream
    assert asr.head_source("decoder") is asr.head_source("decoder")
    assert asr.head_source("all") is asr.head_source("all")
    shapes = {scope: Heads(asr.head_source(scope)).shape for scope in ("encoder", "decoder", "all")}
    assert shapes == {"encoder": (4, 6), "decoder": (8, 6), "all": (12, 6)}
    names = asr.row_names("all")
    assert names[:5] == ["enc.L0", "enc.L1", "enc.L2", "enc.L3", "dec.L0.self"]
    assert names[5:7] == ["dec.L0.cross", "dec.L1.self"] and len(names) == 12
    assert asr.row_names("decoder") == names[ENCODER_ROWS:]
    blocks = Heads(asr.head_source("decoder")).blocks
    layers = asr.model.model.decoder.layers
    assert blocks[6].module is layers[3].self_attn and blocks[7].module is layers[3].encoder_attn
    with pytest.raises(UpstreamError, match="unknown heads scope 'cross' \\(choose from encoder"):
        asr.head_source("cross")  # type: ignore[arg-type]


def test_stats_per_scope_agree_and_skip_decoder_padding(asr: WhisperASR, batch, stats) -> None:
    assert stats.n_clips == 2 and stats.mean.shape == (12, 6, 64)
    fit = asr.stats_forward
    with short(asr):
        joined = Heads(asr.head_source("all")).fit_stats([batch], 8, forward=fit)
        encoder = Heads(asr.upstream).fit_stats([batch], 8, forward=fit)
        one = Heads(asr.head_source("decoder")).fit_stats([batch], 1, forward=fit)
        heads = Heads(asr.head_source("decoder"))
        with torch.no_grad(), heads.capture() as record:
            _, labels = asr.teacher_forced(*batch)
    # encoder rows see 2 x 130 frames, decoder rows a few tokens: each counts its own
    assert torch.allclose(joined.mean[:ENCODER_ROWS], encoder.mean, atol=1e-6)
    assert torch.allclose(joined.std[:ENCODER_ROWS], encoder.std, atol=1e-6)
    assert one.n_clips == 1
    tokens = (labels != IGNORE).sum(1) + 1  # prompt + text; the rest is padding
    assert tokens[0] > tokens[1]  # the second transcript is padded in the batched forward
    for layer in range(heads.n_layers):
        ctx = record[layer][0]
        valid = torch.cat([ctx[row, :n] for row, n in enumerate(tokens)])
        assert torch.allclose(joined.mean[ENCODER_ROWS + layer], valid.mean(0), atol=1e-5)
        assert torch.allclose(
            joined.std[ENCODER_ROWS + layer], valid.std(0, unbiased=False), atol=1e-5
        )
        assert torch.allclose(one.mean[layer], ctx[0, : tokens[0]].mean(0), atol=1e-5)


def test_pruned_decoder_equals_mean_mask(asr: WhisperASR, batch, stats, whisper_cache_dir):
    dec_stats, mask = decoder_rows(stats), decoder_mask()
    with Heads(asr.head_source("decoder"), dec_stats).masked(mask):
        expected_text = asr.transcribe(batch[0], batch[1])
    pruned = load_whisper_asr("30s", cache_dir=whisper_cache_dir)
    expected, got = mask_vs_prune(asr, pruned, "decoder", mask, dec_stats, batch)
    assert (got - expected).abs().max().item() < FLOAT32_LOGITS
    assert pruned.transcribe(batch[0], batch[1]) == expected_text
    assert all(text.strip() for text in expected_text)
    heads = Heads(pruned.head_source("decoder"))
    assert heads.alive().tolist() == mask.tolist()
    layers = pruned.model.model.decoder.layers
    assert [layer.self_attn.q_proj.out_features for layer in layers] == [320, 384, 256, 384]
    assert [layer.encoder_attn.num_heads for layer in layers] == [5, 1, 6, 4]  # 1: inert head

    # the KV cache holds the pruned head counts, layer by layer
    with torch.no_grad(), short(pruned):
        encoded = pruned.encode(batch[0], batch[1])
        cache = pruned._step(encoded, torch.tensor([pruned.prompt] * 2)).cache
    self_heads = [layer.keys.shape[1] for layer in cache.self_attention_cache.layers]
    cross_heads = [layer.keys.shape[1] for layer in cache.cross_attention_cache.layers]
    assert self_heads == [5, 6, 4, 6] and cross_heads == [5, 1, 6, 4]

    # alignment heads: [1, 0] lost its whole layer, [3, 1] and [3, 3] were removed
    pairs = pruned.model.generation_config.alignment_heads
    assert pairs == TINY_EN_ALIGNMENT
    kept_cross = pruned.kept_cross_heads()
    assert kept_cross == [[0, 1, 3, 4, 5], [], list(range(6)), [0, 2, 4, 5]]
    remapped, dropped = remap_alignment_heads(pairs, kept_cross)
    assert dropped == [[1, 0], [3, 1], [3, 3]]
    assert remapped == [[2, 0], [2, 5], [3, 0], [3, 1], [3, 2]]
    for layer, head in remapped:
        assert 0 <= head < layers[layer].encoder_attn.num_heads
        assert [layer, kept_cross[layer][head]] in pairs


def test_pruning_through_all_is_seen_by_every_scope(
    asr: WhisperASR, batch, stats, whisper_cache_dir
):
    mask = all_mask()
    pruned = load_whisper_asr("30s", cache_dir=whisper_cache_dir)
    expected, got = mask_vs_prune(asr, pruned, "all", mask, stats, batch)
    assert (got - expected).abs().max().item() < FLOAT32_LOGITS
    assert Heads(pruned.upstream).alive().tolist() == mask[:ENCODER_ROWS].tolist()
    assert Heads(pruned.head_source("decoder")).alive().tolist() == mask[ENCODER_ROWS:].tolist()
    assert pruned.kept_cross_heads()[2] == [1, 2, 3, 4, 5]

    # and the other way round: pruning the encoder alone shows in "all"
    more = torch.ones(4, 6, dtype=torch.bool)
    more[0, 4] = False
    Heads(
        pruned.upstream,
        HeadStats(stats.mean[:ENCODER_ROWS], stats.std[:ENCODER_ROWS], stats.n_clips),
    ).prune(more)
    alive = Heads(pruned.head_source("all")).alive()
    assert alive[0].tolist() == [True] * 4 + [False, True]
    assert alive[ENCODER_ROWS:].tolist() == mask[ENCODER_ROWS:].tolist()


@pytest.mark.parametrize("scope", ["decoder", "all"])
def test_removal_is_exact_in_float64(stats, batch, whisper_cache_dir, scope: str) -> None:
    reference, fresh = (load_whisper_asr(cache_dir=whisper_cache_dir).double() for _ in range(2))
    mask, rows = (
        (decoder_mask(), decoder_rows(stats)) if scope == "decoder" else (all_mask(), stats)
    )
    expected, got = mask_vs_prune(reference, fresh, scope, mask, rows, batch)
    assert got.dtype == torch.float64
    assert (got - expected).abs().max().item() < 1e-9
    assert (got - logits(reference, batch)).abs().max() > 1  # the mask matters


def test_gates_on_decoder_heads_get_gradient(asr: WhisperASR, batch, stats) -> None:
    heads = Heads(asr.head_source("decoder"), decoder_rows(stats))
    gates = torch.ones(heads.shape, requires_grad=True)
    with short(asr), heads.gated(gates):
        loss = asr.loss(*batch)
    loss.backward()
    assert gates.grad is not None and torch.all(gates.grad.abs().sum(1) > 0)  # every row
    assert not any(p.requires_grad for p in asr.parameters())


def test_bottleneck_on_decoder_heads_attaches_and_detaches(asr: WhisperASR, batch, stats) -> None:
    heads = Heads(asr.head_source("decoder"), decoder_rows(stats))
    bottleneck = HeadBottleneck(heads)
    with short(asr):
        with torch.no_grad():
            plain = asr.loss(*batch)
        with bottleneck.attached(torch.Generator().manual_seed(0)):
            noisy = asr.loss(*batch)
        capacity = bottleneck.capacity()
        (noisy + capacity.mean()).backward()
        with torch.no_grad():
            after = asr.loss(*batch)
    assert capacity.shape == (8, 6) and torch.all(capacity > 0)
    assert bottleneck.alpha.grad is not None and torch.all(
        bottleneck.alpha.grad.abs().sum((1, 2)) > 0
    )
    assert float(noisy.detach()) != float(plain) and torch.equal(after, plain)
    assert all(not b.out_proj._forward_pre_hooks for b in heads.blocks)


@pytest.mark.parametrize("scope", ["decoder", "all"])
def test_decoder_scopes_refuse_waveform_only_calls(asr: WhisperASR, batch, scope: str) -> None:
    heads = Heads(asr.head_source(scope))
    with pytest.raises(UpstreamError, match="attention maps are only available for encoder heads"):
        heads.attention_maps(batch[0])
    with pytest.raises(UpstreamError, match="pass forward=asr.stats_forward") as error:
        heads.fit_stats([batch[0]], 2)
    assert "\n" not in str(error.value)


def test_remap_alignment_heads() -> None:
    kept = [list(range(6)), [1, 2, 3, 4, 5], [5, 0], []]  # any order a layer has
    remapped, dropped = remap_alignment_heads(TINY_EN_ALIGNMENT, kept)
    assert remapped == [[2, 1], [2, 0]]
    assert dropped == [[1, 0], [3, 0], [3, 1], [3, 2], [3, 3], [3, 4]]
    assert remap_alignment_heads(TINY_EN_ALIGNMENT, [list(range(6))] * 4) == (TINY_EN_ALIGNMENT, [])
    with pytest.raises(UpstreamError, match=r"alignment head \[4, 0\] is outside the 4-layer"):
        remap_alignment_heads([[4, 0]], kept)
