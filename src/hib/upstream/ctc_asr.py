"""transformers CTC checkpoints (`Wav2Vec2ForCTC`, `HubertForCTC`) as speech recognisers.

Same API as `WhisperASR` (`upstream`, `loss`, `transcribe`): `upstream` is the existing
`HFUpstream` around the checkpoint's base model, and the logits are its `lm_head` applied to
the upstream's last hidden state, so `Heads(asr.upstream)` masks what the CTC head reads.

Batches are zero-padded without an attention mask, as wav2vec2-base checkpoints were trained
(their feature extractors return none); where the checkpoint normalises its input, each clip
is normalised over its own length (not the padded one), as the feature extractor does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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
    valid = (torch.arange(waves.shape[1]) < lengths[:, None]).to(waves.dtype)
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
        self.upstream = HFUpstream(base, name, normalize)
        self.lm_head = model.lm_head
        self.tokenizer = tokenizer
        self.blank = int(tokenizer.pad_token_id)
        delimiter = tokenizer.convert_tokens_to_ids(tokenizer.word_delimiter_token)
        self._silent = set(tokenizer.all_special_ids) - {delimiter}
        letters = [t for t in tokenizer.get_vocab() if len(t) == 1 and t.isalpha()]
        self.upper = bool(letters) and all(t.isupper() for t in letters)

    @contextmanager
    def _raw_upstream(self) -> Iterator[None]:
        """The upstream sees already-normalised clips, so it must not normalise the padded row."""
        kept, self.upstream.normalize = self.upstream.normalize, False
        try:
            yield
        finally:
            self.upstream.normalize = kept

    def logits(
        self, waves: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, vocab) logits and the valid frames per clip (B,)."""
        if self.upstream.normalize:
            waves = normalize_clips(waves, lengths)
        with self._raw_upstream():
            hidden = self.upstream(waves).hidden_states[-1]
        base = self.upstream.model  # hidden_states[-1] is after a pre-LN encoder's final norm
        frames = base._get_feat_extract_output_lengths(lengths)
        return self.lm_head(hidden), frames.clamp(max=hidden.shape[1]).long()

    def labels(self, text: str) -> list[int]:
        """Target ids: the text in the vocabulary's case, spaces as the word delimiter."""
        text = " ".join(text.split())
        return self.tokenizer(text.upper() if self.upper else text).input_ids

    def loss(
        self, waves: torch.Tensor, lengths: torch.Tensor, texts: Sequence[str]
    ) -> torch.Tensor:
        """CTC loss summed over the batch, divided by the number of target tokens."""
        logits, frames = self.logits(waves, lengths)
        targets = [torch.tensor(self.labels(t)) for t in texts]
        target_lengths = torch.tensor([len(t) for t in targets])
        log_probs = F.log_softmax(logits.float(), dim=-1).transpose(0, 1)
        total = F.ctc_loss(
            log_probs,
            torch.cat(targets),
            frames,
            target_lengths,
            blank=self.blank,
            reduction="sum",
            zero_infinity=True,
        )
        return total / target_lengths.sum().clamp(min=1)

    @torch.no_grad()
    def transcribe(self, waves: torch.Tensor, lengths: torch.Tensor, **_: object) -> list[str]:
        """Greedy CTC: best token per frame, repeats collapsed, blanks dropped."""
        logits, frames = self.logits(waves, lengths)
        best = logits.argmax(-1)
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
