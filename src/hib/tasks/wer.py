"""Word error rate as every Whisper evaluation computes it: normalise, then count edits.

Both sides go through Whisper's English text normaliser (transformers'
`EnglishTextNormalizer`: lower case, punctuation and fillers dropped, contractions expanded,
numbers written as digits, British spellings made American). transformers ships the code but
not its spelling mapping (`normalizer.json` lives in the hub repos), so the mapping comes from
the `whisper-normalizer` package, whose `normalizers/english.json` is OpenAI's file.

The WER is corpus-level: total edits over total reference words, not a mean of per-utterance
rates (which would weigh a 3-word utterance like a 30-word one).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from importlib.resources import files

from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

from hib.errors import HibError


@cache
def _normalizer() -> EnglishTextNormalizer:
    mapping = json.loads((files("whisper_normalizer") / "normalizers" / "english.json").read_text())
    return EnglishTextNormalizer(mapping)


def normalize(text: str) -> str:
    """Whisper's English normalisation of one transcript."""
    return _normalizer()(text)


def corpus_wer(references: Sequence[str], hypotheses: Sequence[str]) -> dict[str, float | int]:
    """{"wer", "words", "substitutions", "deletions", "insertions"} over all pairs together.

    "words" counts normalised reference words; a corpus with none has WER 0 if nothing was
    inserted, else inf.
    """
    import jiwer

    if len(references) != len(hypotheses):
        raise HibError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    refs = [normalize(r) for r in references]
    hyps = [normalize(h) for h in hypotheses]
    subs = dels = ins = words = 0
    if refs:
        out = jiwer.process_words(refs, hyps)
        subs, dels, ins = out.substitutions, out.deletions, out.insertions
        words = out.hits + subs + dels
    edits = subs + dels + ins
    wer = edits / words if words else (0.0 if edits == 0 else float("inf"))
    return {
        "wer": wer,
        "words": words,
        "substitutions": subs,
        "deletions": dels,
        "insertions": ins,
    }
