"""A synthesized ASR corpus in the LibriSpeech layout, built offline and cached.

Splits `train` (fitting: bottlenecks, gradients, statistics), `dev` (validation) and `test`,
named by `SPLITS`; every synthesis identity (drawn like the keyword corpus's speakers: espeak-ng
accent x variant x pitch/rate/range from `ASR_VARIANTS`, Piper joe with length/noise/pitch
settings) reads in
exactly one split, so no test voice is heard when fitting. Each utterance is one sentence of
`sentences.sentence`, 2-12 s with a little silence around it, written as FLAC with an
upper-case LibriSpeech-style transcript. Training utterances are clean; a share of dev/test
ones is mixed with the keyword corpus's held-out evaluation noise (`corpus.eval_noise`: six
families, never written to disk) at a random SNR, seeded by the utterance id.

Every draw comes from `rng_for(seed, what, which)`, so bytes do not depend on worker count.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from hib.data.audio import SAMPLE_RATE
from hib.data.synth import corpus, noise, voices
from hib.data.synth.build import build_cached, render_utterances
from hib.data.synth.corpus import Speaker, rng_for
from hib.data.synth.spoken import speak_sentence
from hib.errors import DataError
from hib.io import atomic_write, write_json, write_text

ASR_ACCENTS = ("en-us", "en-us-nyc", "en", "en-gb-x-rp")
ASR_VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4",
    "Annie", "announcer", "Hugo", "klatt4", "klatt6", "robosoft6",
)  # fmt: skip
"""espeak-ng voices Whisper tiny.en mostly understands in sentences.

On a first build with every variant and accent of the keyword corpus, clean espeak-ng
utterances scored 67 % WER (Piper: 11 %); several variants (kaukovalta, victor, david, shelby,
Marco, grandma ...) and the Scottish and Caribbean accents were near or above 60 %, which is
noise, not speech, for a recogniser. These are the ones at or below ~30 % there."""
SPLITS = {"fit": "train", "validation": "dev", "test": "test"}
"""Role -> split folder name."""
FORMAT_VERSION = 1

Row = tuple[str, str, str, str, float, str, float]
"""(utterance id, speaker folder, split, transcript, seconds, noise type, SNR dB)."""


@dataclass(frozen=True)
class ASRSynthConfig:
    """What the corpus is made of; every field is part of the cache key."""

    utterances: tuple[int, int, int] = (200, 150, 200)
    """Per split, in SPLITS order (train, dev, test)."""
    speakers: tuple[int, int, int] = (50, 30, 40)
    seed: int = 0
    piper_fraction: float = 0.5
    espeak_pitch: tuple[int, int] = (15, 85)
    espeak_rate: tuple[int, int] = (130, 180)
    espeak_range: tuple[int, int] = (10, 90)
    piper_length_scale: tuple[float, float] = (0.8, 1.3)
    piper_noise_scale: tuple[float, float] = (0.3, 0.9)
    piper_noise_w_scale: tuple[float, float] = (0.4, 1.0)
    piper_semitones: tuple[float, float] = (-3.0, 3.0)
    accents: tuple[str, ...] = ASR_ACCENTS
    variants: tuple[str, ...] = ASR_VARIANTS
    min_words: tuple[int, int] = (5, 20)
    """Each sentence grows clause by clause to at least this many words (drawn per utterance)."""
    max_words: int = 30
    seconds: tuple[float, float] = (2.0, 12.0)
    """Accepted length, silence included; a sentence outside is drawn again."""
    silence_s: tuple[float, float] = (0.1, 0.4)
    """Silence before and after the speech, each drawn."""
    level_dbfs: tuple[float, float] = (-30.0, -15.0)
    eval_clean_fraction: float = 0.5
    eval_snr_db: tuple[float, float] = (10.0, 25.0)
    eval_noise_types: tuple[str, ...] = noise.NOISE_TYPES
    noise_seconds: float = 60.0

    def key(self) -> str:
        blob = json.dumps([FORMAT_VERSION, dataclasses.asdict(self)], sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()


@dataclass(frozen=True)
class Job:
    speaker: Speaker
    number: int
    """The speaker's LibriSpeech-style folder number; the chapter is 100 + it."""
    split: str
    count: int


def build_asr_corpus(
    out: str | Path,
    config: ASRSynthConfig = ASRSynthConfig(),
    progress: bool = True,
    workers: int = 2,
) -> Path:
    """Build into `out` (or return at once if built for `config`); swapped in when complete."""
    _check_config(config)
    return build_cached(out, config, lambda tmp: _write(tmp, config, progress, workers))


def _write(root: Path, config: ASRSynthConfig, progress: bool, workers: int) -> None:
    """Piper speakers first (the slow ones), on `workers` spawned processes; then the index."""
    start = time.monotonic()
    rows = render_utterances(
        _task, root, config, plan(config), workers, "synth asr corpus", progress
    )
    _write_index(root, config, rows, time.monotonic() - start)


def _check_config(config: ASRSynthConfig) -> None:
    if any(n < 1 for n in config.utterances) or any(
        s < 1 or s > n for s, n in zip(config.speakers, config.utterances, strict=True)
    ):
        raise DataError("every split needs 1 <= speakers <= utterances")
    if set(config.eval_noise_types) - set(noise.NOISE_TYPES) or not config.eval_noise_types:
        raise DataError(f"eval_noise_types must be some of {noise.NOISE_TYPES}")
    if config.noise_seconds < config.seconds[1] + 1:
        raise DataError("noise_seconds must exceed the longest utterance")


def plan(config: ASRSynthConfig) -> list[Job]:
    """Speakers per split (Piper and espeak-ng shared out in proportion) and their counts."""
    jobs, number = [], 0
    per_split = voices.split_speakers(config)
    for split, members, total in zip(SPLITS.values(), per_split, config.utterances, strict=True):
        for speaker, count in zip(members, voices.spread(total, len(members)), strict=True):
            number += 1
            jobs.append(Job(speaker, number, split, count))
    return jobs


def render_job(root: Path, config: ASRSynthConfig, job: Job) -> list[Row]:
    """One speaker's chapter: FLAC files and the transcript file."""
    degraded = job.split != SPLITS["fit"]
    # the noise bank synthesizes babble, so it must exist before the speaker's engine is reset
    bank = corpus.eval_noise(config.seed, config.noise_seconds) if degraded else {}
    synth = corpus._synthesizer(job.speaker, config.seed)
    speaker, chapter = str(job.number), str(100 + job.number)
    folder = root / job.split / speaker / chapter
    rows, lines = [], []
    for k in range(job.count):
        utt = f"{speaker}-{chapter}-{k:04d}"
        text, audio = speak_sentence(synth, rng_for(config.seed, "text", utt), config)
        kind, snr = "clean", math.inf
        if degraded:
            audio, kind, snr = corpus.degrade(audio, utt, config, bank)
        audio = np.clip(audio / max(1.0, np.abs(audio).max() / 0.99), -1, 1)
        atomic_write(
            folder / f"{utt}.flac",
            lambda p, a=audio: sf.write(str(p), a, SAMPLE_RATE, format="FLAC", subtype="PCM_16"),
        )
        lines.append(f"{utt} {text.upper()}\n")
        rows.append((utt, speaker, job.split, text.upper(), len(audio) / SAMPLE_RATE, kind, snr))
    write_text(folder / f"{speaker}-{chapter}.trans.txt", "".join(lines))
    return rows


def _task(args: tuple[Path, ASRSynthConfig, Job]) -> list[Row]:
    return render_job(*args)


def _write_index(root: Path, config: ASRSynthConfig, rows: list[Row], seconds: float) -> None:
    """speakers.tsv, utterances.tsv (text, length, noise, SNR), then corpus.json (done mark)."""
    jobs = {str(j.number): j for j in plan(config)}
    fields = ("speaker", "engine", "voice", "variant", "pitch", "rate", "split")
    lines = ["\t".join(fields)]
    for number, job in sorted(jobs.items(), key=lambda kv: int(kv[0])):
        s = job.speaker
        lines.append("\t".join((number, s.engine, s.voice, s.variant, s.pitch, s.rate, job.split)))
    write_text(root / "speakers.tsv", "\n".join(lines) + "\n")
    table = "".join(f"{u}\t{sp}\t{s:.2f}\t{k}\t{snr:.2f}\t{t}\n" for u, _, sp, t, s, k, snr in rows)
    write_text(root / "utterances.tsv", "id\tsplit\tseconds\tnoise\tsnr_db\ttext\n" + table)
    per_split = {s: [r for r in rows if r[2] == s] for s in SPLITS.values()}
    summary = {
        "format_version": FORMAT_VERSION,
        "config_key": config.key(),
        "config": dataclasses.asdict(config),
        "splits": SPLITS,
        "utterances_per_split": {s: len(v) for s, v in per_split.items()},
        "hours_per_split": {s: round(sum(r[4] for r in v) / 3600, 3) for s, v in per_split.items()},
        "speakers_per_split": {s: len({r[1] for r in v}) for s, v in per_split.items()},
        "speakers_per_engine": dict(Counter(j.speaker.engine for j in jobs.values())),
        "build_seconds": round(seconds, 1),
    }
    write_json(root / "corpus.json", summary)
