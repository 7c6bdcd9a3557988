"""What every synthesized corpus build shares: the cache check, the swap-in, the worker pool.

A build goes to a hidden sibling folder that is renamed to `out` at the end, so an
interrupted build never looks complete; `corpus.json`, written last by each corpus, records
the config key that makes a later call a no-op. An existing `out` is replaced only if it is
empty or an older corpus (has corpus.json), never an unrelated folder.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from hib.errors import DataError

T = TypeVar("T")
R = TypeVar("R")


class Keyed(Protocol):
    def key(self) -> str: ...


def corpus_is_complete(out: str | Path, config: Keyed) -> bool:
    """True when `out` holds a finished build of exactly this config (corpus.json is last)."""
    try:
        meta = json.loads((Path(out) / "corpus.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("config_key") == config.key()


def build_cached(out: str | Path, config: Keyed, write: Callable[[Path], None]) -> Path:
    """`out`, built by `write(folder)` unless it already holds this config's build."""
    out = Path(out)
    if corpus_is_complete(out, config):
        return out
    _check_replaceable(out)
    tmp = out.parent / f".{out.name}.building-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write(tmp)
        _swap_in(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def run_jobs(
    fn: Callable[[T], list[R]],
    tasks: Sequence[T],
    workers: int,
    *,
    total: int,
    desc: str,
    unit: str,
    progress: bool,
) -> list[R]:
    """Every task's rows (in completion order) on `workers` processes, a bar counting rows."""
    from tqdm import tqdm

    rows: list[R] = []
    with tqdm(total=total, unit=unit, desc=desc, disable=not progress) as bar:
        for done in _map(fn, tasks, workers):
            rows.extend(done)
            bar.update(len(done))
    return rows


def render_utterances(
    fn: Callable[[tuple], list[R]],
    root: Path,
    config: Any,
    jobs: Sequence[Any],
    workers: int,
    desc: str,
    progress: bool,
) -> list[R]:
    """Every job's rows, sorted: Piper speakers first (the slow engine, so the workers end
    together), `config.utterances` counted on the bar. For corpora of sentences per speaker."""
    ordered = sorted(jobs, key=lambda j: j.speaker.engine != "piper")
    tasks = [(root, config, j) for j in ordered]
    total = sum(config.utterances)
    return sorted(
        run_jobs(fn, tasks, workers, total=total, desc=desc, unit="utt", progress=progress)
    )


def _map(fn: Callable[[T], list[R]], tasks: Sequence[T], workers: int) -> Iterator[list[R]]:
    """Spawned processes: fork after ONNX Runtime or espeak-ng state exists is not safe."""
    if workers <= 1:
        yield from map(fn, tasks)
        return
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap_unordered(fn, tasks)


def _check_replaceable(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder; refusing to replace it")
    if out.exists() and any(out.iterdir()) and not (out / "corpus.json").exists():
        raise DataError(f"{out}: exists and is not a synthesized corpus; refusing to replace it")


def _swap_in(tmp: Path, out: Path) -> None:
    """Replace `out` by `tmp` with renames, so `out` is either the old or the new corpus."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        os.replace(out, old)
    os.replace(tmp, out)
    shutil.rmtree(old, ignore_errors=True)
