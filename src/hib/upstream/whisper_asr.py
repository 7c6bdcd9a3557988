"""A full packaged Whisper (encoder + decoder) as a speech recogniser whose encoder heads hib sees.

`WhisperASR.upstream` is a `WhisperEncoderUpstream` around the *same* encoder module the decoder
reads, so `Heads(asr.upstream)` masks or gates exactly what the decoder then attends to.

Input length (`context`):

- "30s": every clip zero-padded to 30 s, as Whisper's own feature extraction does (3000 frames,
  1500 encoder positions): the input the model was trained on.
- "short": the batch padded only to its longest clip, the positional table sliced (as keyword
  spotting does): cheaper, but off the training distribution. docs/asr.md has the measured
  WER and cost of both.

Heads (`head_source(scope)`): "encoder" is `upstream`; "decoder" and "all" add the decoder's
self- and cross-attention heads (hib.upstream.whisper_heads; docs/asr.md, "Decoder heads").

Prompt: tiny.en starts from <|startoftranscript|><|notimestamps|>; a multilingual model (base)
is told the language and task too, <|startoftranscript|><|en|><|transcribe|><|notimestamps|>,
since every task here is English and, left to itself, it may guess another language.

Targets: LibriSpeech transcripts are upper case without punctuation, which Whisper never
writes; such a reference is sentence-cased before tokenizing, so the teacher-forced loss asks
for text in Whisper's own style (WER is computed after normalisation either way).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from tokenizers import Tokenizer
from torch import nn
from torch.nn import functional as F
from transformers import WhisperForConditionalGeneration

from hib.errors import UpstreamError
from hib.upstream.base import mark_unpruned
from hib.upstream.packaged import TINY_EN, packaged_files
from hib.upstream.whisper import WhisperEncoderUpstream, is_multilingual, load_whisper_model
from hib.upstream.whisper_heads import DecoderHeads, JoinedHeads

Scope = Literal["encoder", "decoder", "all"]
SCOPES: tuple[str, ...] = ("encoder", "decoder", "all")

Context = Literal["30s", "short"]
CONTEXTS: tuple[str, ...] = ("30s", "short")
WINDOW_SAMPLES = 30 * 16000
NO_TIMESTAMPS = "<|notimestamps|>"
PROMPT = ("<|startoftranscript|>", NO_TIMESTAMPS)
MULTILINGUAL_PROMPT = ("<|startoftranscript|>", "<|en|>", "<|transcribe|>", NO_TIMESTAMPS)
END = "<|endoftext|>"
IGNORE = -100


def token_budget(seconds: float) -> int:
    """Tokens a transcript of `seconds` of speech can need: 16 + 8 per second (fast read
    English is ~3-4 tokens per second), at most Whisper's 224 per window."""
    return min(224, 16 + int(8 * seconds + 0.999))


LOOP_REPEATS = 4
LOOP_TOKENS = 16


def looping(written: list[torch.Tensor]) -> torch.Tensor:
    """(B,) True where the tokens so far end in one n-gram repeated LOOP_REPEATS times that
    spans at least LOOP_TOKENS tokens: a greedy decoder in such a loop (a heavily pruned
    encoder) repeats it to the token budget, which costs time and changes nothing but the
    count of insertions, so decoding stops there and the hypothesis keeps the repeats so far."""
    batch = written[0].shape[0]
    found = torch.zeros(batch, dtype=torch.bool, device=written[0].device)
    steps = len(written)
    if steps < LOOP_TOKENS:
        return found
    tail = torch.stack(written[-min(steps, 224) :], 1)  # (B, T)
    for period in range(1, tail.shape[1] // LOOP_REPEATS + 1):
        span = period * LOOP_REPEATS
        if span < LOOP_TOKENS:
            continue
        window = tail[:, -span:]
        found |= (window[:, period:] == window[:, :-period]).all(dim=1)
    return found


def target_text(text: str) -> str:
    """The reference as Whisper would write it: all-caps text sentence-cased, with a lead space."""
    text = " ".join(text.split())
    if text.isupper():
        text = text.lower().capitalize()
    return " " + text


class WhisperASR(nn.Module):
    """Waveforms -> text with Whisper's decoder; `loss` is teacher-forced cross-entropy."""

    def __init__(
        self,
        model: WhisperForConditionalGeneration,
        tokenizer: Tokenizer,
        context: Context = "30s",
        name: str = TINY_EN,
    ):
        super().__init__()
        if context not in CONTEXTS:
            raise UpstreamError(f"context must be one of {CONTEXTS}, not {context!r}")
        self.model = model.requires_grad_(False).eval()
        self.upstream = WhisperEncoderUpstream(model.model.encoder, name)
        decoder = DecoderHeads(model.model.decoder, f"{name} decoder")
        joined = JoinedHeads([self.upstream, decoder], f"{name} encoder+decoder")
        self._head_sources = {"encoder": self.upstream, "decoder": decoder, "all": joined}
        self.tokenizer = tokenizer
        self.context = context
        config = model.config
        prompt = MULTILINGUAL_PROMPT if is_multilingual(config) else PROMPT
        self.prompt = [self._token(t) for t in prompt]
        self.end = self._token(END)
        # timestamps (and <|notimestamps|> itself) after the prompt: this model writes none
        timestamps = list(range(self._token(NO_TIMESTAMPS), config.vocab_size))
        self.suppress = sorted({*(config.suppress_tokens or []), *timestamps})
        self.suppress_first = list(config.begin_suppress_tokens or [])

    def _token(self, token: str) -> int:
        index = self.tokenizer.token_to_id(token)
        if index is None:
            raise UpstreamError(f"Whisper tokenizer has no {token}")
        return index

    def head_source(self, scope: Scope) -> Any:
        """What `hib.heads.Heads` takes for `scope`: the same object on every call."""
        if scope not in SCOPES:
            raise UpstreamError(f"unknown heads scope {scope!r} (choose from {', '.join(SCOPES)})")
        return self._head_sources[scope]

    def row_names(self, scope: Scope) -> list[str]:
        """One label per row of the scope's head grid: "enc.L0", "dec.L0.self", "dec.L0.cross"."""
        self.head_source(scope)  # refuses an unknown scope
        encoder = [f"enc.L{i}" for i in range(len(self.model.model.encoder.layers))]
        decoder = [
            f"dec.L{i}.{kind}"
            for i in range(len(self.model.model.decoder.layers))
            for kind in ("self", "cross")
        ]
        return {"encoder": encoder, "decoder": decoder, "all": encoder + decoder}[scope]

    def kept_cross_heads(self) -> list[list[int]]:
        """Per decoder layer, the original cross-attention heads it still has (alignment heads)."""
        source = self._head_sources["decoder"]
        mark_unpruned(source)
        return [list(kept) for kept in source.kept_heads[1::2]]

    def prepare(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, N) zero-padded 16 kHz waveforms -> what the encoder reads, per `context`."""
        if int(lengths.max()) > WINDOW_SAMPLES:
            seconds = int(lengths.max()) / WINDOW_SAMPLES * 30
            raise UpstreamError(f"{seconds:.1f} s input is longer than Whisper's 30 s window")
        n = WINDOW_SAMPLES if self.context == "30s" else int(lengths.max())
        return F.pad(waves[:, :n], (0, max(0, n - waves.shape[1])))

    def encode(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, N) zero-padded 16 kHz waveforms -> encoder output (B, T, D), per `context`."""
        return self.upstream(self.prepare(waves, lengths)).hidden_states[-1]

    def outputs(
        self, encoded: torch.Tensor, texts: Sequence[str], lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Teacher-forced token logits (B, T, vocab) for the reference transcripts."""
        return self._forced(encoded, self._teacher_forcing(texts)[0])

    def loss_of(
        self,
        logits: torch.Tensor,
        texts: Sequence[str],
        lengths: torch.Tensor | None = None,
        reduction: str = "mean",
    ) -> torch.Tensor:
        """Cross-entropy per transcript (mean over its target tokens: the text, then
        <|endoftext|>), averaged ("mean") or added ("sum") over the batch."""
        labels = self._teacher_forcing(texts)[1].to(logits.device)
        tokens = F.cross_entropy(
            logits.transpose(1, 2).float(), labels, ignore_index=IGNORE, reduction="none"
        )
        per_text = tokens.sum(1) / (labels != IGNORE).sum(1).clamp(min=1)
        return per_text.sum() if reduction == "sum" else per_text.mean()

    def reference_probability(
        self, logits: torch.Tensor, texts: Sequence[str], lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean probability of each transcript's target tokens, summed over the batch."""
        labels = self._teacher_forcing(texts)[1].to(logits.device)
        scored = labels != IGNORE
        probs = logits.float().softmax(-1).gather(2, labels.clamp(min=0)[..., None])[..., 0]
        return ((probs * scored).sum(1) / scored.sum(1).clamp(min=1)).sum()

    def loss(
        self, waves: torch.Tensor, lengths: torch.Tensor, texts: Sequence[str]
    ) -> torch.Tensor:
        """Mean over the transcripts of the cross-entropy per target token."""
        return self.loss_of(self.outputs(self.encode(waves, lengths), texts), texts)

    def teacher_forced(
        self, waves: torch.Tensor, lengths: torch.Tensor, texts: Sequence[str]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder logits (B, S, vocab) on prompt + text, and the labels `loss` scores them by."""
        inputs, labels = self._teacher_forcing(texts)
        return self._forced(self.encode(waves, lengths), inputs), labels

    def _forced(self, encoded: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        return self.model(
            encoder_outputs=(encoded,), decoder_input_ids=inputs.to(encoded.device), use_cache=False
        ).logits

    def stats_forward(self, batch: tuple[torch.Tensor, torch.Tensor, Sequence[str]]) -> None:
        """A (waves, lengths, texts) batch for `Heads.fit_stats(..., forward=...)`, any scope.

        The encoder runs on the batch, the teacher-forced decoder on each transcript alone, so
        no padding token enters the decoder heads' statistics.
        """
        waves, lengths, texts = batch
        encoded = self.encode(waves, lengths)
        for row, text in enumerate(texts):
            self._forced(encoded[row : row + 1], self._teacher_forcing([text])[0])

    def _teacher_forcing(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder inputs (prompt + text) and labels (text + end), padded; prompt not scored."""
        encoded = [
            self.tokenizer.encode(target_text(t), add_special_tokens=False).ids for t in texts
        ]
        width = len(self.prompt) + max(len(e) for e in encoded)
        limit = self.model.config.max_target_positions
        if width > limit:
            raise UpstreamError(f"a transcript of {width} tokens exceeds Whisper's {limit}")
        inputs = torch.full((len(texts), width), self.end)
        labels = torch.full((len(texts), width), IGNORE)
        start = len(self.prompt) - 1
        for row, ids in enumerate(encoded):
            sequence = self.prompt + ids
            inputs[row, : len(sequence)] = torch.tensor(sequence)
            labels[row, start : start + len(ids) + 1] = torch.tensor([*ids, self.end])
        return inputs, labels

    def _step(self, encoded: torch.Tensor, ids: torch.Tensor, cache=None):
        return self.model(encoder_outputs=(encoded,), decoder_input_ids=ids, cache=cache)

    @torch.no_grad()
    def transcribe(
        self, waves: torch.Tensor, lengths: torch.Tensor, max_new_tokens: int | None = None
    ) -> list[str]:
        """Batched greedy decoding with the decoder's KV cache; stops at <|endoftext|>."""
        return self.decode(self.encode(waves, lengths), lengths, max_new_tokens)

    @torch.no_grad()
    def decode(
        self, encoded: torch.Tensor, lengths: torch.Tensor, max_new_tokens: int | None = None
    ) -> list[str]:
        """Greedy text from encoder outputs. `max_new_tokens` defaults to a budget from the
        longest clip's duration (`token_budget`), so a decoder that loops (a heavily pruned
        encoder) stops where no real transcript of that audio could still be going."""
        if max_new_tokens is None:
            max_new_tokens = token_budget(float(lengths.max()) / 16000)
        batch = encoded.shape[0]
        ids = torch.tensor([self.prompt] * batch, device=encoded.device)
        finished = torch.zeros(batch, dtype=torch.bool, device=encoded.device)
        written: list[torch.Tensor] = []
        cache = None
        for step in range(max_new_tokens):
            out = self._step(encoded, ids, cache)
            logits = out.logits[:, -1].float()
            logits[:, self.suppress] = -torch.inf
            if step == 0:
                logits[:, self.suppress_first] = -torch.inf
            token = torch.where(finished, self.end, logits.argmax(-1))
            written.append(token)
            finished |= (token == self.end) | looping(written)
            if bool(finished.all()):
                break
            ids, cache = token[:, None], out.cache
        tokens = torch.stack(written, 1).tolist() if written else [[] for _ in range(batch)]
        return [self.text(row) for row in tokens]

    def text(self, tokens: list[int]) -> str:
        """Token ids up to the first <|endoftext|> -> text."""
        if self.end in tokens:
            tokens = tokens[: tokens.index(self.end)]
        return self.tokenizer.decode(tokens, skip_special_tokens=True).strip()


def load_whisper_asr(
    context: Context = "30s", cache_dir: str | Path | None = None, name: str = TINY_EN
) -> WhisperASR:
    """A packaged Whisper with its tokenizer (converted once into the hib cache)."""
    model = load_whisper_model(cache_dir, name)
    tokenizer = Tokenizer.from_file(str(packaged_files(name) / "tokenizer.json"))
    return WhisperASR(model, tokenizer, context, name)
