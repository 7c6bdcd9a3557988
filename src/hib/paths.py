"""Where hib keeps what it can rebuild: converted weights, synthesized corpora."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """$HIB_CACHE, else $XDG_CACHE_HOME/hib, else ~/.cache/hib."""
    if os.environ.get("HIB_CACHE"):
        return Path(os.environ["HIB_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "hib"
