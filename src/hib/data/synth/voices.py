"""Speakers of the utterance corpora (ASR, IC, SID): drawn as the keyword corpus draws them,
then (ASR, IC) shared out so that every synthesis identity speaks in exactly one split.

A config here is any corpus config with `speakers` (a count per split, or one for all), `seed`,
`piper_fraction`, `variants` (the espeak-ng variants to draw from) and the voice ranges of
`SynthConfig` under the same names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from hib.data.synth import corpus
from hib.data.synth.corpus import Speaker, SynthConfig, rng_for
from hib.errors import DataError

ENGINES = ("piper", "espeak")


def total_speakers(config: Any) -> int:
    """`speakers` is a count per split, or one count (SID: every speaker in every split)."""
    return config.speakers if isinstance(config.speakers, int) else sum(config.speakers)


def voice_settings(config: Any) -> SynthConfig:
    """The keyword corpus's voice settings taken from `config`, so the same code draws speakers."""
    names = {f.name for f in dataclasses.fields(SynthConfig)} - {"variants"}
    shared = {k: v for k, v in dataclasses.asdict(config).items() if k in names}
    return SynthConfig(n_speakers=total_speakers(config), **shared)


def draw_speakers(
    config: Any, distinct: Callable[[Speaker], object] = lambda s: s.id
) -> list[Speaker]:
    """`total_speakers` identities, no two alike by `distinct`, the first `piper_fraction` Piper."""
    voices, total = voice_settings(config), total_speakers(config)
    n_piper = round(total * config.piper_fraction)
    speakers: dict[object, Speaker] = {}
    for attempt in range(100 * total):
        if len(speakers) == total:
            return list(speakers.values())
        rng = rng_for(config.seed, "speaker", attempt)
        if len(speakers) < n_piper:
            speaker = corpus._piper_speaker(rng, voices)
        else:
            speaker = corpus._espeak_speaker(rng, voices, list(config.variants))
        speakers.setdefault(distinct(speaker), speaker)
    raise DataError(f"the voice ranges allow fewer than {total} speakers")


def split_speakers(config: Any) -> list[list[Speaker]]:
    """The speakers of each split, Piper and espeak-ng shared out in proportion, disjoint."""
    speakers = draw_speakers(config)
    bounds = np.cumsum([0, *config.speakers]) / sum(config.speakers)
    per_split: list[list[Speaker]] = [[] for _ in config.speakers]
    for engine in ENGINES:
        group = [s for s in speakers if s.engine == engine]
        order = rng_for(config.seed, "assign", engine).permutation(len(group))
        cuts = np.round(bounds * len(group)).astype(int)
        for k, members in enumerate(per_split):
            members.extend(group[i] for i in order[cuts[k] : cuts[k + 1]])
    return per_split


def spread(total: int, n: int) -> list[int]:
    """`total` utterances over `n` speakers, as evenly as whole numbers allow."""
    return [int(c) for c in np.diff(np.round(np.linspace(0, total, n + 1)).astype(int))]
