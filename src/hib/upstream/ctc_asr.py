"""transformers CTC checkpoints (`Wav2Vec2ForCTC`, `HubertForCTC`) as speech recognisers.

Same API as `WhisperASR` (`upstream`, `loss`, `transcribe`): `upstream` is the existing
`HFUpstream` around the checkpoint's base model, and the logits are its `lm_head` applied to
the upstream's last hidden state, so `Heads(asr.upstream)` masks what the CTC head reads.

Batches are zero-padded without an attention mask, as wav2vec2-base checkpoints were trained
(their feature extractors return none); where the checkpoint normalises its input, each clip
is normalised over its own length (not the padded one), as the feature extractor does.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import groupby

import torch
from torch import nn
from torch.nn import functional as F
from transformers import AutoModelForCTC, PreTrainedModel, Wav2Vec2CTCTokenizer

from hib.errors import UpstreamError
from hib.upstream.hf import (
    WAVEFORM_MODELS,
    HFUpstream,
    _first_line,
    _location,
    _pretrained,
    _wants_normalize,
    load_config,
)


def normalize_clips(waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance per clip over its first `lengths` samples; padding stays 0."""
    valid = (torch.arange(waves.shape[1], device=waves.device) < lengths[:, None]).to(waves.dtype)
    n = lengths[:, None].to(waves.dtype)
    mean = (waves * valid).sum(1, keepdim=True) / n
    var = ((waves - mean) ** 2 * valid).sum(1, keepdim=True) / n
    return (waves - mean) / torch.sqrt(var + 1e-7) * valid


class CTCASR(nn.Module):
    """Waveforms -> characters with a CTC head; `loss` is CTC per target token."""

    def __init__(
        self, model: PreTrainedModel, tokenizer: Wav2Vec2CTCTokenizer, name: str, normalize: bool
    ):
        super().__init__()
        self.model = model.requires_grad_(False).eval()
        base = getattr(model, model.base_model_prefix)
        # the upstream never normalises: over a padded row that would count the padding, so
        # `prepare` normalises each clip over its own length instead
        self.upstream = HFUpstream(base, name, normalize=False)
        self.normalize = normalize
        self.lm_head = model.lm_head
        self.tokenizer = tokenizer
        self.blank = int(tokenizer.pad_token_id)
        delimiter = tokenizer.convert_tokens_to_ids(tokenizer.word_delimiter_token)
        self._silent = set(tokenizer.all_special_ids) - {delimiter}
        letters = [t for t in tokenizer.get_vocab() if len(t) == 1 and t.isalpha()]
        self.upper = bool(letters) and all(t.isupper() for t in letters)

    def prepare(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """What the upstream reads with its own normalisation off: each clip normalised over
        its own length where the checkpoint wants it."""
        return normalize_clips(waves, lengths) if self.normalize else waves

    def logits(
        self, waves: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, vocab) logits and the valid frames per clip (B,)."""
        hidden = self.upstream(self.prepare(waves, lengths)).hidden_states[-1]
        return self.outputs(hidden), self.frames(lengths, hidden.shape[1])

    def frames(self, lengths: torch.Tensor, limit: int) -> torch.Tensor:
        return self.upstream.output_frames(lengths).clamp(max=limit)

    def outputs(
        self,
        encoded: torch.Tensor,
        texts: Sequence[str] | None = None,
        lengths: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B, T, vocab) logits from the upstream's last hidden state (after a pre-LN
        encoder's final norm)."""
        return self.lm_head(encoded)

    def labels(self, text: str) -> list[int]:
        """Target ids: the text in the vocabulary's case, spaces as the word delimiter."""
        text = " ".join(text.split())
        return self.tokenizer(text.upper() if self.upper else text).input_ids

    def loss_of(
        self,
        logits: torch.Tensor,
        texts: Sequence[str],
        lengths: torch.Tensor,
        reduction: str = "mean",
    ) -> torch.Tensor:
        """CTC loss per target token: "mean" divides the batch's sum by its target tokens (as
        the checkpoints' own "sum" reduction over tokens); "sum" adds each clip's per-token
        loss (per-example gradients)."""
        targets = [torch.tensor(self.labels(t), device=logits.device) for t in texts]
        target_lengths = torch.tensor([len(t) for t in targets], device=logits.device)
        log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)
        per_clip = F.ctc_loss(
            log_probs,
            torch.cat(targets),
            self.frames(lengths, logits.shape[1]),
            target_lengths,
            blank=self.blank,
            reduction="none",
            zero_infinity=True,
        )
        if reduction == "sum":
            return (per_clip / target_lengths.clamp(min=1)).sum()
        return per_clip.sum() / target_lengths.sum().clamp(min=1)

    def reference_probability(
        self, logits: torch.Tensor, texts: Sequence[str], lengths: torch.Tensor
    ) -> torch.Tensor:
        """exp(-CTC loss per token) of each transcript, summed over the batch."""
        per_token = torch.stack(
            [self.loss_of(logits[i : i + 1], [t], lengths[i : i + 1]) for i, t in enumerate(texts)]
        )
        return torch.exp(-per_token).sum()

    def loss(
        self, waves: torch.Tensor, lengths: torch.Tensor, texts: Sequence[str]
    ) -> torch.Tensor:
        """CTC loss summed over the batch, divided by the number of target tokens."""
        logits, _ = self.logits(waves, lengths)
        return self.loss_of(logits, texts, lengths)

    @torch.no_grad()
    def transcribe(self, waves: torch.Tensor, lengths: torch.Tensor, **_: object) -> list[str]:
        """Greedy CTC: best token per frame, repeats collapsed, blanks dropped."""
        logits, _ = self.logits(waves, lengths)
        return self.decode_logits(logits, lengths)

    @torch.no_grad()
    def decode(self, encoded: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        """Greedy text from the upstream's last hidden state."""
        return self.decode_logits(self.outputs(encoded), lengths)

    def decode_logits(self, logits: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        best = logits.argmax(-1)
        frames = self.frames(lengths, logits.shape[1])
        return [self.text(best[i, : int(n)].tolist()) for i, n in enumerate(frames)]

    def text(self, frame_ids: list[int]) -> str:
        """Frame-wise ids -> text (collapse repeats, drop blank/special, `|` -> space)."""
        ids = [i for i, _ in groupby(frame_ids) if i != self.blank and i not in self._silent]
        tokens = self.tokenizer.convert_ids_to_tokens(ids)
        delimiter = self.tokenizer.word_delimiter_token
        return " ".join("".join(" " if t == delimiter else t for t in tokens).split())


def load_ctc_asr(spec: str, name: str | None = None) -> CTCASR:
    """A local folder or hub id of a wav2vec2 / HuBERT CTC checkpoint with its tokenizer."""
    config = load_config(spec)
    if config.model_type not in WAVEFORM_MODELS:
        raise UpstreamError(
            f"upstream {spec!r}: CTC needs a {'/'.join(WAVEFORM_MODELS)} checkpoint, "
            f"not {config.model_type!r}"
        )
    model = _pretrained(AutoModelForCTC, spec, config)
    try:
        tokenizer = Wav2Vec2CTCTokenizer.from_pretrained(_location(spec))
    except (OSError, ValueError, TypeError) as exc:
        raise UpstreamError(f"upstream {spec!r}: no CTC tokenizer: {_first_line(exc)}") from None
    return CTCASR(model, tokenizer, name or spec, _wants_normalize(spec, config))
