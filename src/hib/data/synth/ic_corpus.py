"""A synthesized intent-classification corpus in the Fluent Speech Commands layout, cached.

Each utterance is one wording (`commands.PHRASINGS`) of one of FSC's 31 intents, the intents
dealt out evenly in every split and the wording drawn per utterance. Speakers are synthesis
identities drawn like the ASR corpus's (espeak-ng accent x variant x pitch/rate/range, Piper
joe with length/noise/pitch settings); each reads in exactly one split, so test voices are
heard neither when fitting nor when choosing on validation. Training utterances are clean;
a share of validation/test ones is mixed with the keyword corpus's held-out evaluation noise
(`corpus.eval_noise`, never written) at a random SNR, seeded by the file name.

Written: `data/{train,valid,test}_data.csv` and `wavs/speakers/<id>/<n>.wav` (what
`hib.data.fsc.load_fsc` reads), `speakers.tsv`, `degradations.tsv` (noise and SNR of every
validation/test file) and last `corpus.json`. Every draw comes from `rng_for(seed, what,
which)`, so the bytes do not depend on the worker count.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hib.data.audio import SAMPLE_RATE, write_wav
from hib.data.fsc import CSV_DIR, INTENTS, SPLIT_FILES
from hib.data.synth import corpus, noise, voices
from hib.data.synth.asr_corpus import ASR_ACCENTS, ASR_VARIANTS
from hib.data.synth.build import build_cached, render_utterances
from hib.data.synth.commands import PHRASINGS
from hib.data.synth.corpus import Speaker, rng_for
from hib.errors import DataError
from hib.io import write_json, write_text

FORMAT_VERSION = 1

Row = tuple[str, str, str, str, int, float, str, float]
"""(split, relative path, speaker id, transcription, intent index, seconds, noise, SNR dB)."""


@dataclass(frozen=True)
class ICSynthConfig:
    """What the corpus is made of; every field is part of the cache key."""

    utterances: tuple[int, int, int] = (3100, 620, 930)
    """Per split, in SPLIT_FILES order (train, validation, test)."""
    speakers: tuple[int, int, int] = (100, 25, 35)
    seed: int = 0
    piper_fraction: float = 0.3
    espeak_pitch: tuple[int, int] = (15, 85)
    espeak_rate: tuple[int, int] = (120, 190)
    espeak_range: tuple[int, int] = (10, 90)
    piper_length_scale: tuple[float, float] = (0.8, 1.3)
    piper_noise_scale: tuple[float, float] = (0.3, 0.9)
    piper_noise_w_scale: tuple[float, float] = (0.4, 1.0)
    piper_semitones: tuple[float, float] = (-3.0, 3.0)
    accents: tuple[str, ...] = ASR_ACCENTS
    variants: tuple[str, ...] = ASR_VARIANTS
    silence_s: tuple[float, float] = (0.1, 0.6)
    """Silence before and after the speech, each drawn."""
    level_dbfs: tuple[float, float] = (-30.0, -15.0)
    eval_clean_fraction: float = 0.5
    eval_snr_db: tuple[float, float] = (5.0, 20.0)
    eval_noise_types: tuple[str, ...] = noise.NOISE_TYPES
    noise_seconds: float = 20.0
    max_seconds: float = 8.0
    """Longer utterances are an error (a config whose rates make commands this slow is wrong)."""

    def key(self) -> str:
        blob = json.dumps([FORMAT_VERSION, dataclasses.asdict(self)], sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()


@dataclass(frozen=True)
class Job:
    """One speaker's utterances: the intent (index into INTENTS) of each, in order."""

    speaker: Speaker
    split: str
    intents: tuple[int, ...]


def build_ic_corpus(
    out: str | Path,
    config: ICSynthConfig = ICSynthConfig(),
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Build into `out` (or return at once if built for `config`); swapped in when complete."""
    _check_config(config)
    return build_cached(out, config, lambda tmp: _write(tmp, config, progress, workers))


def _check_config(config: ICSynthConfig) -> None:
    if any(n < 1 for n in config.utterances) or any(
        s < 1 or s > n for s, n in zip(config.speakers, config.utterances, strict=True)
    ):
        raise DataError("every split needs 1 <= speakers <= utterances")
    if set(config.eval_noise_types) - set(noise.NOISE_TYPES) or not config.eval_noise_types:
        raise DataError(f"eval_noise_types must be some of {noise.NOISE_TYPES}")
    if config.noise_seconds < config.max_seconds + 1:
        raise DataError("noise_seconds must exceed max_seconds by at least 1")


def plan(config: ICSynthConfig) -> list[Job]:
    """Speakers per split and what each says: each split deals out shuffled rounds of all
    31 intents, so every intent occurs as often as any other, give or take one."""
    jobs = []
    per_split = voices.split_speakers(config)
    for split, members, total in zip(SPLIT_FILES, per_split, config.utterances, strict=True):
        rng, rounds = rng_for(config.seed, "intents", split), -(-total // len(INTENTS))
        intents = np.concatenate([rng.permutation(len(INTENTS)) for _ in range(rounds)])
        intents = intents[:total].tolist()
        for speaker, count in zip(members, voices.spread(total, len(members)), strict=True):
            jobs.append(Job(speaker, split, tuple(intents[:count])))
            intents = intents[count:]
    return jobs


def _write(root: Path, config: ICSynthConfig, progress: bool, workers: int) -> None:
    """Piper speakers first (the slow ones), on `workers` spawned processes; then the index."""
    start = time.monotonic()
    jobs = plan(config)
    rows = render_utterances(_task, root, config, jobs, workers, "synth ic corpus", progress)
    _write_index(root, config, jobs, rows, time.monotonic() - start)


def _task(args: tuple[Path, ICSynthConfig, Job]) -> list[Row]:
    return render_job(*args)


def render_job(root: Path, config: ICSynthConfig, job: Job) -> list[Row]:
    """One speaker's files: a drawn wording of each intent, silence around it, noise on eval."""
    degraded = job.split != "train"
    # the noise bank synthesizes babble, so it must exist before the speaker's engine is reset
    bank = corpus.eval_noise(config.seed, config.noise_seconds) if degraded else {}
    synth = corpus._synthesizer(job.speaker, config.seed)
    rows = []
    for k, intent in enumerate(job.intents):
        rel = f"wavs/speakers/{job.speaker.id}/{job.speaker.id}-{k:03d}.wav"
        rng = rng_for(config.seed, "utterance", rel)
        options = PHRASINGS[INTENTS[intent]]
        text = options[int(rng.integers(len(options)))]
        audio = _speak(synth, text, rng, config, rel)
        kind, snr = "clean", math.inf
        if degraded:
            audio, kind, snr = corpus.degrade(audio, rel, config, bank)
        write_wav(root / rel, audio / max(1.0, np.abs(audio).max() / 0.99))
        transcription = text[0].upper() + text[1:]
        seconds = len(audio) / SAMPLE_RATE
        rows.append((job.split, rel, job.speaker.id, transcription, intent, seconds, kind, snr))
    return rows


def _speak(synth, text: str, rng: np.random.Generator, config: ICSynthConfig, rel: str):
    """The spoken text, trimmed, at a drawn level, with drawn silences before and after."""
    speech = corpus.trim_silence(synth(text))
    if len(speech) == 0:
        raise DataError(f"{rel}: synthesis of {text!r} is silent")
    pads = [int(rng.uniform(*config.silence_s) * SAMPLE_RATE) for _ in range(2)]
    if (len(speech) + sum(pads)) / SAMPLE_RATE > config.max_seconds:
        raise DataError(f"{rel}: {text!r} lasts over max_seconds={config.max_seconds}")
    rms = np.sqrt(np.mean(speech**2)) + 1e-12
    speech = speech * (10 ** (rng.uniform(*config.level_dbfs) / 20) / rms)
    return np.pad(speech, pads).astype(np.float32)


def _write_index(
    root: Path, config: ICSynthConfig, jobs: list[Job], rows: list[Row], seconds: float
) -> None:
    """The three FSC csv files, speakers.tsv, degradations.tsv, then corpus.json (done mark)."""
    for split, name in SPLIT_FILES.items():
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["", "path", "speakerId", "transcription", "action", "object", "location"])
        mine = [r for r in rows if r[0] == split]
        for i, (_, rel, speaker, text, intent, *_) in enumerate(mine):
            writer.writerow([i, rel, speaker, text, *INTENTS[intent]])
        write_text(root / CSV_DIR / name, buffer.getvalue())
    fields = ("speaker", "engine", "voice", "variant", "pitch", "rate", "split")
    lines = ["\t".join(fields)]
    for job in sorted(jobs, key=lambda j: j.speaker.id):
        s = job.speaker
        lines.append("\t".join((s.id, s.engine, s.voice, s.variant, s.pitch, s.rate, job.split)))
    write_text(root / "speakers.tsv", "\n".join(lines) + "\n")
    evaluated = sorted((rel, kind, snr) for split, rel, *_, kind, snr in rows if split != "train")
    table = "".join(f"{rel}\t{kind}\t{snr:.2f}\n" for rel, kind, snr in evaluated)
    write_text(root / "degradations.tsv", "path\tnoise\tsnr_db\n" + table)
    per_split = {s: [r for r in rows if r[0] == s] for s in SPLIT_FILES}
    summary = {
        "format_version": FORMAT_VERSION,
        "config_key": config.key(),
        "config": dataclasses.asdict(config),
        "utterances_per_split": {s: len(v) for s, v in per_split.items()},
        "hours_per_split": {s: round(sum(r[5] for r in v) / 3600, 3) for s, v in per_split.items()},
        "speakers_per_split": {s: len({r[2] for r in v}) for s, v in per_split.items()},
        "speakers_per_engine": dict(Counter(j.speaker.engine for j in jobs)),
        "intents": len(INTENTS),
        "phrasings": sum(len(p) for p in PHRASINGS.values()),
        "build_seconds": round(seconds, 1),
    }
    write_json(root / "corpus.json", summary)
