"""transformers checkpoints (local folder or hub id) as `Upstream`s: wav2vec2, HuBERT, WavLM,
Whisper.

Models are loaded with eager attention (the kernel that returns attention weights; forwards
that need none switch to SDPA, see `Upstream.attention_kernel`) and with every stochastic part
off (dropout, LayerDrop, SpecAugment masking), so a frozen upstream gives the same features in
train() and eval() mode. WavLM's attention, one fused call in transformers, is replaced on
loading by hib's per-head module (hib.upstream.wavlm), so its heads are hooked, masked and
removed like the others.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel, WhisperModel

from hib.errors import UpstreamError
from hib.upstream.base import AttentionBlock, Upstream
from hib.upstream.packaged import PACKAGED
from hib.upstream.wavlm import per_head_attention
from hib.upstream.whisper import WhisperEncoderUpstream

WAVEFORM_MODELS = ("wav2vec2", "hubert")
"""model_type values whose encoder layers hold a per-head `attention` module."""
SUPPORTED = (*WAVEFORM_MODELS, "wavlm", "whisper")

_STOCHASTIC = (
    "dropout",
    "attention_dropout",
    "activation_dropout",
    "hidden_dropout",
    "feat_proj_dropout",
    "final_dropout",
    "layerdrop",
    "encoder_layerdrop",
    "decoder_layerdrop",
)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
"""owner/name: anything else that is not a local folder is a typo, not worth a network round."""


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _location(spec: str) -> str:
    """A local folder (with ~ expanded) if one exists, else the spec as a hub id."""
    local = Path(spec).expanduser()
    return str(local) if local.exists() else spec


def load_config(spec: str) -> PretrainedConfig:
    """The checkpoint's config, with one-line UpstreamErrors for the ways a spec can be wrong."""
    is_local = bool(spec) and Path(spec).expanduser().exists()
    if not is_local and not _HUB_ID.match(spec):
        raise UpstreamError(
            f"upstream {spec!r}: no such folder, not a Hugging Face hub id (owner/name), "
            f"nor a packaged Whisper ({', '.join(PACKAGED)})"
        )
    try:
        config = AutoConfig.from_pretrained(_location(spec))
    except (OSError, ValueError) as exc:
        where = "local folder" if is_local else "Hugging Face hub (offline?)"
        raise UpstreamError(
            f"upstream {spec!r}: cannot load from {where}: {_first_line(exc)}"
        ) from None
    for name in _STOCHASTIC:
        if hasattr(config, name):
            setattr(config, name, 0.0)
    if hasattr(config, "apply_spec_augment"):
        config.apply_spec_augment = False
    return config


def _pretrained(model_cls: type, spec: str, config: PretrainedConfig) -> PreTrainedModel:
    try:
        return model_cls.from_pretrained(
            _location(spec), config=config, attn_implementation="eager"
        )
    except (OSError, ValueError) as exc:
        raise UpstreamError(f"upstream {spec!r}: cannot load weights: {_first_line(exc)}") from None


def _wants_normalize(spec: str, config: PretrainedConfig) -> bool:
    """The checkpoint's feature-extractor `do_normalize`, else the layer-norm-stem convention.

    wav2vec2 "large-lv60"-style models (feat_extract_norm == "layer") were trained on zero-mean
    unit-variance audio; the "group" ones on raw audio.
    """
    from transformers import Wav2Vec2FeatureExtractor

    try:
        return bool(Wav2Vec2FeatureExtractor.from_pretrained(_location(spec)).do_normalize)
    except (OSError, ValueError):
        return getattr(config, "feat_extract_norm", "group") == "layer"


class HFUpstream(Upstream):
    """A wav2vec2 / HuBERT / WavLM model: raw waveform -> CNN stem -> transformer encoder.

    hidden_states are the model's own (n_layers + 1, after its final layer norm where it has one).
    """

    def __init__(self, model: PreTrainedModel, name: str, normalize: bool):
        super().__init__()
        self.name = name
        self.model = model
        self.normalize = normalize
        self.hidden_size = model.config.hidden_size
        self.model_type = model.config.model_type
        self.freeze()

    @property
    def _stable_layer_norm(self) -> bool:
        """Pre-LN encoders ("large" models) norm after the last layer; post-LN ones, first."""
        return bool(getattr(self.model.config, "do_stable_layer_norm", False))

    def output_frames(self, lengths: torch.Tensor) -> torch.Tensor:
        return self.model._get_feat_extract_output_lengths(lengths).long()

    def embed(self, waveforms: torch.Tensor) -> torch.Tensor:
        """CNN stem, feature projection and convolutional positions, as the model's own forward."""
        if self.normalize:  # as Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm, per clip
            mean = waveforms.mean(dim=-1, keepdim=True)
            var = waveforms.var(dim=-1, keepdim=True, unbiased=False)
            waveforms = (waveforms - mean) / torch.sqrt(var + 1e-7)
        features = self.model.feature_extractor(waveforms).transpose(1, 2)
        hidden = self.model.feature_projection(features)
        if isinstance(hidden, tuple):  # wav2vec2 also returns the normed features
            hidden = hidden[0]
        encoder = self.model.encoder
        hidden = hidden + encoder.pos_conv_embed(hidden)
        return hidden if self._stable_layer_norm else encoder.layer_norm(hidden)

    def run_layer(self, index: int, hidden: torch.Tensor) -> torch.Tensor:
        return self.model.encoder.layers[index](hidden, attention_mask=None)

    def feed_forward_out(self, index: int) -> nn.Linear | None:
        """Pre-LN layers only: a post-LN layer norms after its feed-forward's residual sum."""
        if not self._stable_layer_norm:
            return None
        return self.model.encoder.layers[index].feed_forward.output_dense

    def finish(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.model.encoder.layer_norm(hidden) if self._stable_layer_norm else hidden

    def attention_blocks(self) -> list[AttentionBlock]:
        return [
            AttentionBlock(layer=i, module=layer.attention, head_dim=layer.attention.head_dim)
            for i, layer in enumerate(self.model.encoder.layers)
        ]


class WavLMUpstream(HFUpstream):
    """A WavLM model, as wav2vec2 (same stem and encoder layout), with per-head attention.

    Each layer computes WavLM's relative position bias from layer 0's embedding itself (the
    model's own forward hands it on from layer 0), so a forward can start at any layer.
    """

    def __init__(self, model: PreTrainedModel, name: str, normalize: bool):
        per_head_attention(model)
        super().__init__(model, name, normalize)

    def run_layer(self, index: int, hidden: torch.Tensor) -> torch.Tensor:
        return self.model.encoder.layers[index](hidden, attention_mask=None)[0]


def load_hf_upstream(spec: str, name: str | None = None) -> Upstream:
    """Any supported transformers checkpoint; Whisper ones share `WhisperEncoderUpstream`."""
    config = load_config(spec)
    name = name or spec
    if config.model_type == "whisper":
        encoder = _pretrained(WhisperModel, spec, config).get_encoder()
        return WhisperEncoderUpstream(encoder, name)
    if config.model_type in (*WAVEFORM_MODELS, "wavlm"):
        model = _pretrained(AutoModel, spec, config)
        upstream_cls = WavLMUpstream if config.model_type == "wavlm" else HFUpstream
        return upstream_cls(model, name, normalize=_wants_normalize(spec, config))
    raise UpstreamError(
        f"upstream {spec!r}: model type {config.model_type!r} is not supported "
        f"(supported: {', '.join(SUPPORTED)})"
    )
