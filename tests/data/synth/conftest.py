"""One tiny synthesized corpus shared by the corpus tests (building it takes a few seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hib.data.synth.corpus import SynthConfig, build_corpus

# 24 speakers saying 5 words each: every split gets speakers, every keyword is in training.
TINY = SynthConfig(n_clips=120, n_speakers=24, piper_fraction=0.25, noise_seconds=12.0)


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built with two worker processes, as `build_corpus` runs by default."""
    return build_corpus(tmp_path_factory.mktemp("synth") / "corpus", TINY, progress=False)
