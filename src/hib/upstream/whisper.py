"""Whisper encoders as an `Upstream`, and the packaged Whispers converted for transformers.

Keyword clips are 1 s long, so the encoder runs on 100 log-mel frames -> 50 positions with the
positional table sliced to that length, instead of padding every clip to Whisper's 30 s (60x
the compute for the same 50 useful positions).

The packaged weights (tiny.en, base: hib.upstream.packaged) are CTranslate2 files;
`convert_whisper` maps one once onto transformers' `WhisperForConditionalGeneration` and
caches it as fp32 safetensors.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from transformers import WhisperConfig, WhisperForConditionalGeneration
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from hib.errors import UpstreamError
from hib.io import save_tensors, write_text
from hib.paths import cache_dir as cache_dir_default
from hib.upstream.base import AttentionBlock, Upstream
from hib.upstream.ct2 import CT2Model, read_ct2
from hib.upstream.packaged import (
    MODEL_FILE,
    TINY_EN,
    package_version,
    packaged,
    packaged_files,
    packaged_model_dir,
)

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
_GELU = 3
"""CTranslate2's ActivationType::GELU (exact erf GELU, what Whisper uses)."""
MULTILINGUAL_VOCAB = 51865
"""openai-whisper's and CTranslate2's test: a vocabulary this large has language tokens the
model was trained to read (English-only models have 51864)."""


def is_multilingual(config: WhisperConfig) -> bool:
    """Whether the decoder must be told the language and task (tiny.en must not be)."""
    return config.vocab_size >= MULTILINGUAL_VOCAB


class LogMel(nn.Module):
    """Whisper's log-mel spectrogram in torch: batched and differentiable w.r.t. the waveform.

    Matches WhisperFeatureExtractor on a clip zero-padded to 30 s: reflect padding at the start,
    zeros after the end (what the padded clip has there), the last STFT frame dropped, and the
    max - 8 floor taken per clip. N samples give N // 160 frames.
    """

    def __init__(self, n_mels: int = 80):
        super().__init__()
        from transformers import WhisperFeatureExtractor

        extractor = WhisperFeatureExtractor(feature_size=n_mels)
        self.n_fft = extractor.n_fft
        self.hop_length = extractor.hop_length
        filters = torch.from_numpy(np.ascontiguousarray(extractor.mel_filters.T)).float()
        self.register_buffer("filters", filters, persistent=False)  # (n_mels, n_fft // 2 + 1)
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(B, N) float waveforms at 16 kHz -> (B, n_mels, N // hop_length)."""
        half = self.n_fft // 2
        x = F.pad(waveforms.unsqueeze(1), (half, 0), mode="reflect").squeeze(1)
        x = F.pad(x, (0, half))
        stft = torch.stft(
            x, self.n_fft, self.hop_length, window=self.window, center=False, return_complex=True
        )[..., :-1]
        power = stft.real.square() + stft.imag.square()  # |z|^2 without abs(): finite grad at 0
        log_mel = (self.filters @ power).clamp(min=1e-10).log10()
        log_mel = torch.maximum(log_mel, log_mel.amax(dim=(1, 2), keepdim=True) - 8.0)
        return (log_mel + 4.0) / 4.0


class WhisperEncoderUpstream(Upstream):
    """A transformers `WhisperEncoder` on short clips: waveform -> log-mel -> encoder layers.

    hidden_states[0] is conv stem + positions, hidden_states[i] the output of layer i, the last
    one after the encoder's final layer norm (what the decoder attends to). The layers run SDPA
    unless attention weights are asked for (`Upstream.attention_kernel`), whatever kernel the
    encoder was loaded with.
    """

    def __init__(self, encoder: WhisperEncoder, name: str):
        super().__init__()
        self.name = name
        self.encoder = encoder
        self.logmel = LogMel(encoder.config.num_mel_bins)
        self.hidden_size = encoder.config.d_model
        self.model_type = encoder.config.model_type
        self.freeze()

    def embed(self, waveforms: torch.Tensor) -> torch.Tensor:
        encoder = self.encoder
        x = F.gelu(encoder.conv1(self.logmel(waveforms)))
        x = F.gelu(encoder.conv2(x)).transpose(1, 2)
        positions = encoder.embed_positions.weight
        if x.shape[1] > positions.shape[0]:
            seconds = waveforms.shape[-1] / self.sample_rate
            raise UpstreamError(f"{self.name}: {seconds:.1f} s input is longer than Whisper's 30 s")
        return x + positions[: x.shape[1]]

    def output_frames(self, lengths: torch.Tensor) -> torch.Tensor:
        """N samples -> N // 160 log-mel frames -> ceil(frames / 2) after the stride-2 conv."""
        return (lengths // self.logmel.hop_length + 1) // 2

    def run_layer(self, index: int, hidden: torch.Tensor) -> torch.Tensor:
        return self.encoder.layers[index](hidden, None)

    def finish(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.encoder.layer_norm(hidden)

    def feed_forward_out(self, index: int) -> nn.Linear:
        return self.encoder.layers[index].fc2  # pre-LN: output = stream + fc2(gelu(fc1(LN)))

    def attention_blocks(self) -> list[AttentionBlock]:
        return [
            AttentionBlock(layer=i, module=layer.self_attn, head_dim=layer.self_attn.head_dim)
            for i, layer in enumerate(self.encoder.layers)
        ]


# --- CTranslate2 Whisper -> transformers ---------------------------------------------------------


def _linear(ct2: CT2Model, src: str, dst: str) -> dict[str, np.ndarray]:
    return {f"{dst}.weight": ct2.get(f"{src}/weight"), f"{dst}.bias": ct2.get(f"{src}/bias")}


def _norm(ct2: CT2Model, src: str, dst: str) -> dict[str, np.ndarray]:
    return {f"{dst}.weight": ct2.get(f"{src}/gamma"), f"{dst}.bias": ct2.get(f"{src}/beta")}


def _fused(ct2: CT2Model, src: str, dst: str, parts: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Split a fused projection (rows stacked as `parts`); k_proj has no bias in transformers."""
    weights = np.split(ct2.get(f"{src}/weight"), len(parts))
    biases = np.split(ct2.get(f"{src}/bias"), len(parts))
    out = {}
    for part, weight, bias in zip(parts, weights, biases, strict=True):
        out[f"{dst}.{part}.weight"] = weight
        if part != "k_proj":
            out[f"{dst}.{part}.bias"] = bias
        elif np.any(bias):
            raise UpstreamError(f"{src}: non-zero key bias cannot map onto Whisper's k_proj")
    return out


def _layer(ct2: CT2Model, src: str, dst: str, cross: bool) -> dict[str, np.ndarray]:
    """One CTranslate2 transformer layer; CT2 fuses self-attention qkv and cross-attention kv."""
    self_attn = f"{src}/self_attention"
    tensors = {
        **_norm(ct2, f"{self_attn}/layer_norm", f"{dst}.self_attn_layer_norm"),
        **_fused(ct2, f"{self_attn}/linear_0", f"{dst}.self_attn", ("q_proj", "k_proj", "v_proj")),
        **_linear(ct2, f"{self_attn}/linear_1", f"{dst}.self_attn.out_proj"),
        **_norm(ct2, f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm"),
        **_linear(ct2, f"{src}/ffn/linear_0", f"{dst}.fc1"),
        **_linear(ct2, f"{src}/ffn/linear_1", f"{dst}.fc2"),
    }
    if cross:
        cross_attn = f"{src}/attention"
        tensors |= {
            **_norm(ct2, f"{cross_attn}/layer_norm", f"{dst}.encoder_attn_layer_norm"),
            **_linear(ct2, f"{cross_attn}/linear_0", f"{dst}.encoder_attn.q_proj"),
            **_fused(ct2, f"{cross_attn}/linear_1", f"{dst}.encoder_attn", ("k_proj", "v_proj")),
            **_linear(ct2, f"{cross_attn}/linear_2", f"{dst}.encoder_attn.out_proj"),
        }
    return tensors


def _n_layers(ct2: CT2Model, side: str) -> int:
    pattern = re.compile(rf"{side}/layer_(\d+)/")
    return len({m.group(1) for m in map(pattern.match, ct2.variables) if m})


def _ct2_state_dict(ct2: CT2Model) -> dict[str, np.ndarray]:
    """transformers `WhisperForConditionalGeneration` names -> arrays (proj_out is tied)."""
    enc, dec = "model.encoder", "model.decoder"
    tensors = {
        **_linear(ct2, "encoder/conv1", f"{enc}.conv1"),
        **_linear(ct2, "encoder/conv2", f"{enc}.conv2"),
        f"{enc}.embed_positions.weight": ct2.get("encoder/position_encodings/encodings"),
        **_norm(ct2, "encoder/layer_norm", f"{enc}.layer_norm"),
        f"{dec}.embed_tokens.weight": ct2.get("decoder/embeddings/weight"),
        f"{dec}.embed_positions.weight": ct2.get("decoder/position_encodings/encodings"),
        **_norm(ct2, "decoder/layer_norm", f"{dec}.layer_norm"),
    }
    for side, prefix, cross in (("encoder", enc, False), ("decoder", dec, True)):
        for i in range(_n_layers(ct2, side)):
            tensors |= _layer(ct2, f"{side}/layer_{i}", f"{prefix}.layers.{i}", cross)
    return tensors


def _whisper_config(ct2: CT2Model, model_dir: Path) -> WhisperConfig:
    """Sizes from the tensors; special tokens from the tokenizer; suppression lists from CT2."""
    from tokenizers import Tokenizer

    if ct2.spec_name != "WhisperSpec":
        raise UpstreamError(f"{model_dir}: expected a WhisperSpec model, got {ct2.spec_name}")
    if ct2.scalar("decoder/activation") != _GELU or ct2.scalar("decoder/scale_embeddings"):
        raise UpstreamError(f"{model_dir}: unexpected Whisper variant (activation/scaling)")
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    endoftext = tokenizer.token_to_id("<|endoftext|>")
    start = tokenizer.token_to_id("<|startoftranscript|>")
    meta = json.loads((model_dir / "config.json").read_text())
    vocab_size, d_model = ct2.get("decoder/embeddings/weight").shape
    n_mels = ct2.get("encoder/conv1/weight").shape[1]
    return WhisperConfig(
        vocab_size=vocab_size,
        num_mel_bins=n_mels,
        d_model=d_model,
        encoder_layers=_n_layers(ct2, "encoder"),
        decoder_layers=_n_layers(ct2, "decoder"),
        encoder_attention_heads=ct2.scalar("encoder/num_heads"),
        decoder_attention_heads=ct2.scalar("decoder/num_heads"),
        encoder_ffn_dim=ct2.get("encoder/layer_0/ffn/linear_0/weight").shape[0],
        decoder_ffn_dim=ct2.get("decoder/layer_0/ffn/linear_0/weight").shape[0],
        max_source_positions=ct2.get("encoder/position_encodings/encodings").shape[0],
        max_target_positions=ct2.get("decoder/position_encodings/encodings").shape[0],
        activation_function="gelu",
        scale_embedding=False,
        bos_token_id=endoftext,
        eos_token_id=endoftext,
        pad_token_id=endoftext,
        decoder_start_token_id=start,
        suppress_tokens=meta.get("suppress_ids"),
        begin_suppress_tokens=meta.get("suppress_ids_begin"),
        tie_word_embeddings=True,
    )


def _check_against_model(config: WhisperConfig, tensors: dict[str, np.ndarray]) -> None:
    """Every parameter of the transformers model is covered, with its shape (cheap, on meta)."""
    with torch.device("meta"):
        expected = WhisperForConditionalGeneration(config).state_dict()
    expected.pop("proj_out.weight")  # tied to the token embedding
    wrong = sorted(k for k in expected.keys() ^ tensors.keys())
    wrong += [k for k in expected.keys() & tensors.keys() if expected[k].shape != tensors[k].shape]
    if wrong:
        raise UpstreamError(f"CTranslate2 -> transformers mapping mismatch: {wrong[:5]}")


def convert_whisper(cache_dir: str | Path | None = None, name: str = TINY_EN) -> Path:
    """The converted folder (config.json + fp32 safetensors) of a packaged Whisper, converting
    on first use.

    The config is written last and atomically, so its presence means the weights are complete;
    concurrent first uses both write the same files.
    """
    root = Path(cache_dir or cache_dir_default())
    out = root / f"{name}-{package_version(packaged(name))}"
    if (out / CONFIG_FILE).exists() and (out / WEIGHTS_FILE).exists():
        return out
    try:  # fail now, not after the conversion
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UpstreamError(f"cache {out}: {exc.strerror} (set $HIB_CACHE elsewhere)") from None
    model_dir = packaged_model_dir(name, root)
    ct2 = read_ct2(model_dir / MODEL_FILE)
    config = _whisper_config(ct2, model_dir)
    arrays = _ct2_state_dict(ct2)
    _check_against_model(config, arrays)
    tensors = {k: torch.from_numpy(v.astype(np.float32)) for k, v in arrays.items()}
    save_tensors(out / WEIGHTS_FILE, tensors, metadata={"format": "pt", "source": str(model_dir)})
    write_text(out / CONFIG_FILE, config.to_json_string())
    return out


def load_whisper_model(
    cache_dir: str | Path | None = None, name: str = TINY_EN
) -> WhisperForConditionalGeneration:
    """A full converted packaged Whisper (encoder + decoder) in eval mode.

    Loaded eager, so the decoder runs as it always has; the encoder's kernel is chosen per
    forward by `WhisperEncoderUpstream`. `generation_config.alignment_heads` ([decoder layer,
    cross-attention head] pairs, what token timestamps read) comes from the packaged model's
    config.json; a multilingual model also gets its language and task tokens there, as
    transformers' own multilingual checkpoints have them.
    """
    folder = convert_whisper(cache_dir, name)
    model = WhisperForConditionalGeneration.from_pretrained(folder, attn_implementation="eager")
    meta_file = packaged_files(name) / "config.json"
    meta = json.loads(meta_file.read_text())
    if meta.get("alignment_heads") is None:
        raise UpstreamError(f"{meta_file}: no alignment_heads")
    generation = model.generation_config
    generation.alignment_heads = meta["alignment_heads"]
    if is_multilingual(model.config):
        from tokenizers import Tokenizer

        generation.is_multilingual = True
        tokenizer = Tokenizer.from_file(str(meta_file.parent / "tokenizer.json"))
        generation.lang_to_id = {tokenizer.id_to_token(i): i for i in meta["lang_ids"]}
        generation.task_to_id = {
            task: tokenizer.token_to_id(f"<|{task}|>") for task in ("transcribe", "translate")
        }
        generation.no_timestamps_token_id = tokenizer.token_to_id("<|notimestamps|>")
    return model.eval()
