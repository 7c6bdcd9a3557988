"""A synthesized speaker-identification corpus in the VoxCeleb1 layout, built offline and cached.

Speakers: every synthesis identity is one speaker folder `id1NNNN` (ids shuffled, so they do
not give the engine away). espeak-ng speakers each have their own accent x variant pair (the
variant sets formants, voice quality and base pitch) plus pitch, range and rate; Piper
speakers (the one `joe` voice) differ by pitch+formant shift and speaking rate together, and
by their noise scales. So speakers that share what a single frame shows (variant, pitch)
still differ in what only time shows: accent, rate, intonation range, Piper's variability.

Deliveries and sessions: a person never says two sentences alike, so each utterance jitters
the speaker's pitch and rate a little; each speaker records several "videos", each with its own
microphone and room (band limit, spectral tilt, one resonance, reverberation), as VoxCeleb's
YouTube sessions do.

Splits: SUPERB's SID protocol: every speaker in every split, different utterances in each
(`iden_split.txt` codes 1/2/3). No session is in two splits (4 train, 1 validation, 1 test
per speaker by default), so the channel is a nuisance to generalise over, not a cue: with
sessions shared across splits, a linear probe on the mean log-mel spectrum matched Whisper on
clean test speech (docs/sid_ic.md). Training utterances are clean; a share of validation and
test ones carries the held-out evaluation noise of the keyword corpus (`corpus.eval_noise`).

Every draw comes from `rng_for(seed, what, which)`, so bytes do not depend on worker count.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import numpy as np
from scipy.signal import butter, fftconvolve, sosfilt

from hib.data.audio import SAMPLE_RATE, write_wav
from hib.data.synth import corpus, espeak, noise, voices
from hib.data.synth.build import build_cached, run_jobs
from hib.data.synth.corpus import Speaker, rng_for
from hib.data.synth.spoken import speak_sentence
from hib.data.voxceleb import AUDIO_DIR, LIST_FILE, SPLIT_CODES
from hib.errors import DataError
from hib.io import write_json, write_text

SPLITS = tuple(SPLIT_CODES)
"""train, validation, test: the order of `SIDSynthConfig.utterances`."""
FORMAT_VERSION = 1
_FIRST_ID = 10001

Row = tuple[str, str, float, str, float, str]
"""(relative path, split, seconds, noise type, SNR dB, text)."""


@dataclass(frozen=True)
class SIDSynthConfig:
    """What the corpus is made of; every field is part of the cache key."""

    speakers: int = 200
    utterances: tuple[int, int, int] = (20, 4, 4)
    """Per speaker, in SPLITS order (train, validation, test)."""
    videos: tuple[int, int, int] = (4, 1, 1)
    """Sessions per speaker and split (train, validation, test): no session is in two splits,
    so a test utterance is heard through a microphone and room its speaker never trained in."""
    seed: int = 0
    piper_fraction: float = 0.1
    espeak_pitch: tuple[int, int] = (15, 85)
    espeak_rate: tuple[int, int] = (120, 200)
    espeak_range: tuple[int, int] = (10, 90)
    piper_length_scale: tuple[float, float] = (0.8, 1.3)
    piper_noise_scale: tuple[float, float] = (0.3, 0.9)
    piper_noise_w_scale: tuple[float, float] = (0.4, 1.0)
    piper_semitones: tuple[float, float] = (-5.0, 5.0)
    accents: tuple[str, ...] = espeak.ACCENTS
    variants: tuple[str, ...] = field(default_factory=lambda: tuple(espeak.variants()))
    delivery_pitch: tuple[int, float] = (6, 0.5)
    """Per-utterance pitch jitter, +-: espeak-ng pitch units (0-100), Piper semitones."""
    delivery_rate: float = 0.1
    """Per-utterance rate jitter, +- this fraction of the speaker's rate (both engines)."""
    highpass_hz: tuple[float, float] = (50.0, 250.0)
    lowpass_hz: tuple[float, float] = (3400.0, 7800.0)
    resonance_hz: tuple[float, float] = (300.0, 4000.0)
    resonance_db: tuple[float, float] = (-8.0, 8.0)
    tilt_db: tuple[float, float] = (-6.0, 6.0)
    """Each session's channel: a band limit, a high shelf at 1 kHz (the tilt) and one peaking
    filter (log-uniform centre)."""
    rt60_s: tuple[float, float] = (0.1, 0.5)
    direct_to_reverb_db: tuple[float, float] = (3.0, 15.0)
    """Each session's room: reverberation time and the direct sound's energy over the tail's."""
    min_words: tuple[int, int] = (4, 10)
    max_words: int = 16
    seconds: tuple[float, float] = (2.0, 6.0)
    silence_s: tuple[float, float] = (0.1, 0.3)
    level_dbfs: tuple[float, float] = (-40.0, -10.0)
    eval_clean_fraction: float = 0.5
    eval_snr_db: tuple[float, float] = (10.0, 25.0)
    eval_noise_types: tuple[str, ...] = noise.NOISE_TYPES
    noise_seconds: float = 30.0

    def key(self) -> str:
        blob = json.dumps([FORMAT_VERSION, dataclasses.asdict(self)], sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()


@dataclass(frozen=True)
class Take:
    """One utterance of a speaker: which session, its number there, which split."""

    video: str
    number: int
    split: str

    @property
    def name(self) -> str:
        return f"{self.video}/{self.number:05d}.wav"


@dataclass(frozen=True)
class Job:
    """One speaker's utterances, in a fixed order (engines carry state between calls)."""

    folder: str
    speaker: Speaker
    takes: tuple[Take, ...]


def build_sid_corpus(
    out: str | Path,
    config: SIDSynthConfig = SIDSynthConfig(),
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Build into `out` (or return at once if built for `config`); swapped in when complete."""
    _check_config(config)
    return build_cached(out, config, lambda tmp: _write(tmp, config, progress, workers))


def _write(root: Path, config: SIDSynthConfig, progress: bool, workers: int) -> None:
    """Piper speakers first (the slow ones), on `workers` spawned processes; then the index."""
    start = time.monotonic()
    jobs = plan(config)
    rows = run_jobs(
        _task,
        [(root, config, j) for j in sorted(jobs, key=lambda j: j.speaker.engine != "piper")],
        workers,
        total=config.speakers * sum(config.utterances),
        desc="synth sid corpus",
        unit="utt",
        progress=progress,
    )
    _write_index(root, config, jobs, sorted(rows), time.monotonic() - start)


def _check_config(config: SIDSynthConfig) -> None:
    if config.speakers < 2 or any(n < 1 for n in config.utterances):
        raise DataError("SIDSynthConfig needs 2+ speakers and 1+ utterances per split")
    if any(not 1 <= v <= n for v, n in zip(config.videos, config.utterances, strict=True)):
        raise DataError("every split needs 1 <= videos <= utterances per speaker")
    if set(config.eval_noise_types) - set(noise.NOISE_TYPES) or not config.eval_noise_types:
        raise DataError(f"eval_noise_types must be some of {noise.NOISE_TYPES}")
    if config.noise_seconds < config.seconds[1] + 1:
        raise DataError("noise_seconds must exceed the longest utterance")
    if config.lowpass_hz[1] >= SAMPLE_RATE / 2:
        raise DataError(f"lowpass_hz must stay below {SAMPLE_RATE // 2} Hz")


def plan(config: SIDSynthConfig) -> list[Job]:
    """Speakers, their folder ids, sessions and which utterance goes to which split."""
    speakers = voices.draw_speakers(config, _identity)
    order = rng_for(config.seed, "folders").permutation(len(speakers))
    jobs = []
    for number, index in enumerate(order):
        folder = f"id{_FIRST_ID + number}"
        jobs.append(Job(folder, speakers[index], _takes(config, folder)))
    return jobs


def _identity(s: Speaker) -> tuple[str, ...]:
    """What no two speakers share: espeak-ng accent x variant; Piper pitch shift x rate."""
    return (s.engine, s.voice, s.variant) if s.engine == "espeak" else (s.engine, s.pitch, s.rate)


def _takes(config: SIDSynthConfig, folder: str) -> tuple[Take, ...]:
    """Each split's utterances spread over that split's own sessions, in a shuffled order."""
    rng = rng_for(config.seed, "takes", folder)
    slots: list[tuple[str, str]] = []  # (video, split) per utterance
    for split, count, n_videos in zip(SPLITS, config.utterances, config.videos, strict=True):
        videos = [_video_id(config.seed, folder, split, v) for v in range(n_videos)]
        slots.extend((videos[v], split) for v in rng.permutation(np.arange(count) % n_videos))
    counts: Counter[str] = Counter()
    takes = []
    for i in rng.permutation(len(slots)):
        video, split = slots[i]
        counts[video] += 1
        takes.append(Take(video, counts[video], split))
    return tuple(takes)


def _video_id(seed: int, folder: str, split: str, index: int) -> str:
    """11 URL-safe characters, like a YouTube id."""
    digest = hashlib.sha1(f"{seed}/{folder}/{split}/{index}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:11]


def _delivery(speaker: Speaker, rng: np.random.Generator, config: SIDSynthConfig) -> Speaker:
    """The speaker's settings for one utterance: pitch and rate a little off their centre."""
    pitch_jitter, semitone_jitter = config.delivery_pitch
    tempo = 1.0 + rng.uniform(-config.delivery_rate, config.delivery_rate)
    if speaker.engine == "espeak":
        pitch, pitch_range = (int(v) for v in speaker.pitch.split("/"))
        pitch = int(np.clip(pitch + rng.integers(-pitch_jitter, pitch_jitter, endpoint=True), 0, 99))
        rate = str(round(int(speaker.rate) * tempo))
        return dataclasses.replace(speaker, pitch=f"{pitch}/{pitch_range}", rate=rate)
    semitones = float(speaker.pitch) + rng.uniform(-semitone_jitter, semitone_jitter)
    length = float(speaker.rate) / tempo
    return dataclasses.replace(speaker, pitch=f"{semitones:+.3f}", rate=f"{length:.3f}")


def _session(config: SIDSynthConfig, folder: str, video: str) -> Callable[[np.ndarray], np.ndarray]:
    """A session's microphone and room: band limit, tilt, one resonance, then reverberation."""
    rng = rng_for(config.seed, "channel", folder, video)
    band = butter(
        2,
        [rng.uniform(*config.highpass_hz), rng.uniform(*config.lowpass_hz)],
        btype="band",
        fs=SAMPLE_RATE,
        output="sos",
    )
    tilt = _biquad("shelf", 1000.0, rng.uniform(*config.tilt_db), 0.707)
    centre = math.exp(rng.uniform(*np.log(config.resonance_hz)))
    peak = _biquad("peak", centre, rng.uniform(*config.resonance_db), rng.uniform(0.7, 2.0))
    sos = np.vstack([band, tilt, peak])
    room = _room(rng, rng.uniform(*config.rt60_s), rng.uniform(*config.direct_to_reverb_db))
    return lambda x: fftconvolve(sosfilt(sos, x), room)[: len(x)].astype(np.float32)


def _biquad(kind: str, freq: float, gain_db: float, q: float) -> np.ndarray:
    """A peaking or high-shelf biquad (the audio EQ cookbook's) as one second-order section."""
    a = 10 ** (gain_db / 40)
    w = 2 * math.pi * freq / SAMPLE_RATE
    cos, alpha = math.cos(w), math.sin(w) / (2 * q)
    if kind == "peak":
        b = [1 + alpha * a, -2 * cos, 1 - alpha * a]
        den = [1 + alpha / a, -2 * cos, 1 - alpha / a]
    else:
        root = 2 * math.sqrt(a) * alpha
        b = [a * ((a + 1) + (a - 1) * cos + root), -2 * a * ((a - 1) + (a + 1) * cos)]
        b.append(a * ((a + 1) + (a - 1) * cos - root))
        den = [(a + 1) - (a - 1) * cos + root, 2 * ((a - 1) - (a + 1) * cos)]
        den.append((a + 1) - (a - 1) * cos - root)
    return np.array([[*(x / den[0] for x in b), *(x / den[0] for x in den)]])


def _room(rng: np.random.Generator, rt60: float, drr_db: float) -> np.ndarray:
    """An impulse response: the direct sound, then a noise tail decaying 60 dB in `rt60` s."""
    t = np.arange(1, int(rt60 * SAMPLE_RATE)) / SAMPLE_RATE
    tail = rng.standard_normal(len(t)) * np.exp(-6.908 * t / rt60)
    tail *= math.sqrt(10 ** (-drr_db / 10) / np.sum(tail**2))
    return np.concatenate([[1.0], tail])


def render_job(root: Path, config: SIDSynthConfig, job: Job) -> list[Row]:
    """One speaker's wav files; returns one row per utterance."""
    # the noise bank synthesizes babble, so it must exist before the speaker's engine is reset
    bank = corpus.eval_noise(config.seed, config.noise_seconds)
    say = corpus.engine_for(job.speaker, config.seed)
    sessions = {t.video: _session(config, job.folder, t.video) for t in job.takes}
    rows = []
    for take in job.takes:
        rel = f"{job.folder}/{take.name}"
        settings = _delivery(job.speaker, rng_for(config.seed, "delivery", rel), config)
        text, audio = speak_sentence(
            lambda t, s=settings: say(t, s), rng_for(config.seed, "text", rel), config
        )
        audio = sessions[take.video](audio)
        kind, snr = "clean", math.inf
        if take.split != "train":
            audio, kind, snr = corpus.degrade(audio, rel, config, bank)
        write_wav(root / AUDIO_DIR / rel, audio / max(1.0, np.abs(audio).max() / 0.99))
        rows.append((rel, take.split, len(audio) / SAMPLE_RATE, kind, snr, text))
    return rows


def _task(args: tuple[Path, SIDSynthConfig, Job]) -> list[Row]:
    return render_job(*args)


def _write_index(
    root: Path, config: SIDSynthConfig, jobs: list[Job], rows: list[Row], seconds: float
) -> None:
    """iden_split.txt, speakers.tsv, utterances.tsv, then corpus.json (the done mark)."""
    write_text(root / LIST_FILE, "".join(f"{SPLIT_CODES[r[1]]} {r[0]}\n" for r in rows))
    fields = ("speaker", "engine", "voice", "variant", "pitch", "rate", "videos")
    lines = ["\t".join(fields)]
    for job in sorted(jobs, key=lambda j: j.folder):
        s, videos = job.speaker, len({t.video for t in job.takes})
        lines.append("\t".join((job.folder, s.engine, s.voice, s.variant, s.pitch, s.rate, str(videos))))
    write_text(root / "speakers.tsv", "\n".join(lines) + "\n")
    table = "".join(f"{p}\t{sp}\t{s:.2f}\t{k}\t{snr:.2f}\t{t}\n" for p, sp, s, k, snr, t in rows)
    write_text(root / "utterances.tsv", "path\tsplit\tseconds\tnoise\tsnr_db\ttext\n" + table)
    per_split = {s: [r for r in rows if r[1] == s] for s in SPLITS}
    summary = {
        "format_version": FORMAT_VERSION,
        "config_key": config.key(),
        "config": dataclasses.asdict(config),
        "speakers": len(jobs),
        "utterances_per_split": {s: len(v) for s, v in per_split.items()},
        "hours_per_split": {s: round(sum(r[2] for r in v) / 3600, 3) for s, v in per_split.items()},
        "noisy_per_split": {s: sum(r[3] != "clean" for r in v) for s, v in per_split.items()},
        "speakers_per_engine": dict(Counter(j.speaker.engine for j in jobs)),
        "build_seconds": round(seconds, 1),
        "engines": {name: version(name) for name in corpus.ENGINE_PACKAGES},
    }
    write_json(root / "corpus.json", summary)
