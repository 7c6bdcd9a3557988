"""Whisper's English normaliser and corpus-level WER, on hand-made cases."""

from __future__ import annotations

import pytest

from hib.errors import HibError
from hib.tasks.wer import corpus_wer, normalize


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello, World!", "hello world"),  # case and punctuation
        ("He doesn't know; we'll see.", "he does not know we will see"),  # contractions
        ("twenty one apples", "21 apples"),  # numbers to digits
        ("It cost twenty-five dollars", "it cost $25"),
        ("Mr. Brown's colour", "mister brown is color"),  # titles, 's, British spelling
        ("um, the uh answer", "the answer"),  # fillers
        ("  several   spaces\there ", "several spaces here"),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_normalisation_makes_equivalent_forms_correct() -> None:
    out = corpus_wer(["The colour is twenty one."], ["the color's 21"])
    assert out["wer"] == 0.0 and out["words"] == 4


def test_corpus_level_not_mean_of_utterances() -> None:
    refs = ["we sat by the fire and read the old book", "a cat"]
    hyps = ["we sat by the fire and read the old book", "a dog"]
    out = corpus_wer(refs, hyps)
    # 1 substitution over 12 reference words; the mean of per-utterance rates would be 0.25
    assert out == {"wer": 1 / 12, "words": 12, "substitutions": 1, "deletions": 0, "insertions": 0}


def test_edit_kinds_are_counted() -> None:
    out = corpus_wer(["the big red dog", "go home"], ["the red dog barked", ""])
    assert (out["substitutions"], out["deletions"], out["insertions"]) == (0, 3, 1)
    assert out["words"] == 6 and out["wer"] == pytest.approx(4 / 6)


def test_empty_and_mismatched() -> None:
    assert corpus_wer([], [])["wer"] == 0.0
    assert corpus_wer([""], ["extra"])["wer"] == float("inf")
    with pytest.raises(HibError, match="2 references but 1 hypotheses"):
        corpus_wer(["a", "b"], ["a"])
