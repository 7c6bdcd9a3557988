from pathlib import Path

import pytest

from hib.paths import cache_dir


def test_cache_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HIB_CACHE", "/x/hib")
    assert cache_dir() == Path("/x/hib")
    monkeypatch.delenv("HIB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", "/y")
    assert cache_dir() == Path("/y/hib")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "hib"
