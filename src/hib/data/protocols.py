"""How Speech Commands assigns clips to splits: by a hash of the speaker id, never of the clip.

The rule is the dataset's own (the one that wrote validation_list.txt and testing_list.txt), so
every clip of a speaker lands in the same split and test voices are never heard in training.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import PurePath

_MAX_WAVS_PER_CLASS = 2**27 - 1
_NOHASH = re.compile(r"_nohash_.*$")


def speaker_id(path: str | PurePath) -> str:
    """`<speaker>_nohash_<n>.wav` -> `<speaker>`."""
    return _NOHASH.sub("", PurePath(path).name)


def speaker_percentage(path: str | PurePath) -> float:
    """The speaker's position in [0, 100), from the SHA-1 of the speaker id."""
    digest = hashlib.sha1(speaker_id(path).encode()).hexdigest()
    return (int(digest, 16) % (_MAX_WAVS_PER_CLASS + 1)) * (100.0 / _MAX_WAVS_PER_CLASS)


def which_set(path: str | PurePath, validation_pct: float = 10.0, testing_pct: float = 10.0) -> str:
    """'validation' below validation_pct, 'testing' in the next testing_pct, else 'training'."""
    pct = speaker_percentage(path)
    if pct < validation_pct:
        return "validation"
    if pct < validation_pct + testing_pct:
        return "testing"
    return "training"
