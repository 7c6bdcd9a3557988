"""Which corpus a run reads: a user's folder, or a synthesized default (keywords, ASR, IC, SID)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hib.config import DataConfig
from hib.data.synth.corpus import SynthConfig, build_corpus, holdout_config
from hib.errors import DataError
from hib.paths import cache_dir


def default_corpus_dir(n_clips: int) -> Path:
    return cache_dir() / "corpora" / f"synth-ks-{n_clips}"


def resolve_data_root(
    data: DataConfig, progress: bool = True, default: Callable[[bool], Path] | None = None
) -> Path:
    """The folder to read: data.root, else `default(progress)` (a task's synthesized corpus,
    built once and cached; the keyword corpus of data.synth_clips when None)."""
    if data.root is not None:
        root = Path(data.root).expanduser()
        if not root.is_dir():
            raise DataError(f"data folder not found: {root}")
        return root
    if default is not None:
        return default(progress)
    return Path(
        build_corpus(
            default_corpus_dir(data.synth_clips),
            SynthConfig(n_clips=data.synth_clips),
            progress=progress,
        )
    )


def holdout_corpus(progress: bool = True) -> Path:
    """The held-out-voices corpus (every clip in its test split), built once and cached."""
    config = holdout_config()
    out = cache_dir() / "corpora" / f"synth-ks-holdout-{config.n_clips}"
    return Path(build_corpus(out, config, progress=progress))


def asr_corpus(progress: bool = True) -> Path:
    """The default synthesized ASR corpus (LibriSpeech layout), built once and cached."""
    from hib.data.synth.asr_corpus import ASRSynthConfig, build_asr_corpus

    out = cache_dir() / "corpora" / "synth-asr"
    return Path(build_asr_corpus(out, ASRSynthConfig(), progress=progress))


def ic_corpus(progress: bool = True) -> Path:
    """The default synthesized intent corpus (Fluent Speech Commands layout), built once."""
    from hib.data.synth.ic_corpus import ICSynthConfig, build_ic_corpus

    out = cache_dir() / "corpora" / "synth-ic"
    return Path(build_ic_corpus(out, ICSynthConfig(), progress=progress))


def sid_corpus(progress: bool = True) -> Path:
    """The default synthesized speaker-identification corpus (VoxCeleb1 layout), built once."""
    from hib.data.synth.sid_corpus import SIDSynthConfig, build_sid_corpus

    out = cache_dir() / "corpora" / "synth-sid"
    return Path(build_sid_corpus(out, SIDSynthConfig(), progress=progress))
