"""Atomic, durable file writes: a crash, kill -9 or full disk never leaves a half-written file.

A file is written to a temporary sibling (named after its writer's host and pid, so a later
writer can tell a dead writer's leftover from a live one's), flushed to disk, given the
permissions the umask gives any new file, then renamed over the target; the folder is
flushed too, so the rename survives a power cut. A failed write leaves the previous file.
"""

from __future__ import annotations

import errno
import json
import os
import re
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hib.errors import HibError

_HOST = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"
_TMP = re.compile(r"^\..+\.(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+)\.[^.]+\.tmp$")
WRITE_ERRNOS = frozenset(
    (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM)
    + (errno.ENOTDIR, errno.EISDIR, errno.EEXIST)
)
"""OSErrors that mean "this place cannot be written": reported in one line, not a traceback."""


class WriteError(HibError):
    """A file could not be written (no space, file-size limit, read-only folder)."""


def _umask() -> int:
    """The process umask; read from /proc where it can be, since setting it to read it back
    would briefly change it for every thread."""
    try:
        return int(
            re.search(r"^Umask:\s*([0-7]+)", Path("/proc/self/status").read_text(), re.M)[1], 8
        )
    except (OSError, TypeError):
        mask = os.umask(0)
        os.umask(mask)
        return mask


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(
    path: str | Path,
    write: Callable[[Path], None],
    before_replace: Callable[[Path], None] | None = None,
) -> Path:
    """Call `write(tmp_path)`, flush it, then rename it over `path` (same folder: atomic).

    `before_replace(tmp_path)` runs once the temporary file is complete and on disk (the run
    manifest records its hash there). OSErrors become one-line `WriteError`s naming `path`.
    """
    path = Path(path)
    tmp_path: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.{_HOST}-{os.getpid()}.", suffix=".tmp", dir=path.parent
        )
        tmp_path = Path(tmp)
        os.fchmod(fd, 0o666 & ~_umask())
        os.close(fd)
        write(tmp_path)
        _fsync(tmp_path)
        if before_replace is not None:
            before_replace(tmp_path)
        os.replace(tmp_path, path)
        _fsync(path.parent)
    except OSError as exc:
        if exc.errno not in WRITE_ERRNOS:
            raise
        raise WriteError(f"cannot write {path}: {exc.strerror}") from None
    finally:
        if tmp_path is not None:
            tmp_path.unlink(missing_ok=True)
    return path


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete temporaries in `folder` left by writers on this host that no longer run."""
    removed = []
    for entry in folder.glob(".*.tmp") if folder.is_dir() else []:
        match = _TMP.match(entry.name)
        if match and match["host"] == _HOST and not _alive(int(match["pid"])):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text))


def write_json(path: str | Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str | Path) -> Any:
    """A JSON file hib wrote; anything else is a one-line HibError naming the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HibError(f"{path}: not valid JSON ({exc}); restore or delete it") from None


def tensors_writer(tensors: dict, metadata: dict[str, str] | None = None) -> Callable[[Path], None]:
    """A `write` for atomic_write saving safetensors; its I/O errors become OSErrors."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    os_error = re.compile(r"(.*) \(os error (\d+)\)")

    clean = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}

    def write(p: Path) -> None:
        try:
            save_file(clean, str(p), metadata=metadata)
        except SafetensorError as exc:  # also its I/O errors: "... File too large (os error 27)"
            found = os_error.search(str(exc))
            if found is None:
                raise
            raise OSError(int(found[2]), found[1].rsplit(": ", 1)[-1]) from None

    return write


def save_tensors(path: str | Path, tensors: dict, metadata: dict[str, str] | None = None) -> Path:
    """safetensors.torch.save_file, atomically."""
    return atomic_write(path, tensors_writer(tensors, metadata))


def read_tensors(path: str | Path) -> tuple[dict, dict[str, str]]:
    """(tensors, metadata) of a safetensors file; anything else is a one-line HibError.

    safetensors is a JSON header plus raw bytes, so reading one never runs code.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}  # noqa: SIM118
    except (SafetensorError, UnicodeDecodeError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise HibError(f"{path}: not a readable safetensors file ({reason})") from None
