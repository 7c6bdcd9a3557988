"""One writer at a time in a run folder, and a sha256 manifest of its tensor files.

Every read-modify-write in a run folder (results.json, the manifest) and every checkpoint or
score write holds the folder's lock (`.hib.lock`, a `filelock.FileLock`), so two hib commands
on one folder wait for each other instead of dropping each other's results.

Tensor files are recorded by sha256 in `manifest.json` and checked before they are loaded, so
a truncated, changed or foreign file is refused in one line. A write records the new file's
hash as pending before the rename and promotes it after, so a kill at any point leaves a
manifest that accepts whichever version is on disk. Folders written before manifests existed
load unchecked until hib first writes to them; that write records the files found there.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from hib.errors import HibError
from hib.io import (
    WRITE_ERRNOS,
    WriteError,
    atomic_write,
    read_json,
    remove_stale_temporaries,
    tensors_writer,
    write_json,
)

LOCK_FILE = ".hib.lock"
MANIFEST_FILE = "manifest.json"
WAIT_NOTICE_S = 3.0  # a second writer says why it waits after this long
SUBFOLDERS = ("scores",)  # where else a run folder holds written files

_locks: dict[Path, FileLock] = {}


@contextmanager
def run_lock(run_dir: str | Path) -> Iterator[None]:
    """Hold the run folder's lock (re-entrant in one thread); waits for another writer."""
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        key = run_dir.resolve()
        lock = _locks.setdefault(key, FileLock(key / LOCK_FILE))
        outermost = not lock.is_locked
        try:
            lock.acquire(timeout=WAIT_NOTICE_S)
        except Timeout:
            print(f"waiting for another hib command writing to {run_dir} ...", file=sys.stderr)
            lock.acquire()
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            raise
        raise WriteError(f"cannot write in {run_dir}: {exc.strerror}") from None
    try:
        if outermost:  # nobody else writes now: a temporary left here is a dead writer's
            for folder in (run_dir, *(run_dir / s for s in SUBFOLDERS)):
                remove_stale_temporaries(folder)
        yield
    finally:
        lock.release()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_manifest(run_dir: Path) -> dict[str, dict[str, str]]:
    """{"files": {name: sha256}, "pending": {name: sha256 of a write not yet confirmed}}."""
    path = run_dir / MANIFEST_FILE
    manifest: Any = read_json(path) if path.is_file() else {"files": {}, "pending": {}}
    if not (
        isinstance(manifest, dict)
        and all(isinstance(manifest.get(k), dict) for k in ("files", "pending"))
    ):
        raise HibError(f"{path}: not a hib manifest; restore or delete it")
    return manifest


def _settled(run_dir: Path) -> dict[str, dict[str, str]]:
    """The manifest with every pending entry promoted (its file is on disk) or dropped; a
    folder's first manifest adopts the tensor files already there."""
    manifest = read_manifest(run_dir)
    if not (run_dir / MANIFEST_FILE).is_file():
        found = [*run_dir.glob("*.safetensors"), *run_dir.glob("*/*.safetensors")]
        manifest["files"] = {p.relative_to(run_dir).as_posix(): sha256(p) for p in found}
    for name, digest in list(manifest["pending"].items()):
        path = run_dir / name
        if path.is_file() and sha256(path) == digest:
            manifest["files"][name] = digest
        del manifest["pending"][name]
    return manifest


def save_run_file(run_dir: str | Path, name: str, write: Callable[[Path], None]) -> Path:
    """Write run_dir/name atomically under the run lock and record its sha256."""
    run_dir = Path(run_dir)
    with run_lock(run_dir):
        manifest = _settled(run_dir)

        def record(tmp: Path) -> None:
            manifest["pending"][name] = sha256(tmp)
            write_json(run_dir / MANIFEST_FILE, manifest)

        path = atomic_write(run_dir / name, write, before_replace=record)
        manifest["files"][name] = manifest["pending"].pop(name)
        write_json(run_dir / MANIFEST_FILE, manifest)
    return path


def save_run_tensors(
    run_dir: str | Path, name: str, tensors: dict, metadata: dict[str, str] | None = None
) -> Path:
    return save_run_file(run_dir, name, tensors_writer(tensors, metadata))


def verified(run_dir: str | Path, name: str) -> Path:
    """run_dir/name once its sha256 matches the manifest (folders without one: unchecked)."""
    run_dir = Path(run_dir)
    path = run_dir / name
    if not (run_dir / MANIFEST_FILE).is_file():
        return path
    manifest = read_manifest(run_dir)
    accepted = {manifest["files"].get(name), manifest["pending"].get(name)} - {None}
    if not accepted:
        raise HibError(f"{path}: not in {MANIFEST_FILE}, so not written by hib; refusing it")
    if sha256(path) not in accepted:
        raise HibError(
            f"{path}: sha256 differs from {MANIFEST_FILE} (truncated or changed since hib "
            "wrote it); re-create it"
        )
    return path
