"""Fetching and unpacking the Speech Commands and LibriSpeech archives, safely and only once.

Each archive is streamed to a temporary file, checked, then renamed into place, so an
interrupted or corrupted download never looks finished. Unpacking goes to a temporary folder
first and a marker file records success, so a second call skips what is already there.

Checksums: the SHA-256 of three of the four archives are the ones published by TensorFlow
Datasets (url_checksums/speech_commands.txt) and torchaudio (datasets/speechcommands.py):
they agree on v0.02; v0.01 comes from torchaudio. No published checksum of
speech_commands_test_set_v0.01.tar.gz was found, so that archive is verified only by gzip
CRC and tar structure while unpacking, unless the caller passes `expected_sha256`.
LibriSpeech SHA-256 are torchaudio's (datasets/librispeech.py); train-other-500 has none here.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from pathlib import Path
from typing import Any

from tqdm import tqdm

from hib.errors import DataError
from hib.io import atomic_write

DEFAULT_BASE_URL = "http://download.tensorflow.org/data"
VERSIONS = ("0.01", "0.02")
KNOWN_SHA256 = {
    "speech_commands_v0.01.tar.gz": (
        "743935421bb51cccdb6bdd152e04c5c70274e935c82119ad7faeec31780d811d"
    ),
    "speech_commands_v0.02.tar.gz": (
        "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58"
    ),
    "speech_commands_test_set_v0.02.tar.gz": (
        "cc2a00c1147c2254e9be3fa0f779d8c17421dc349b86366567a8edfa9acd51df"
    ),
}
LIBRISPEECH_URL = "https://www.openslr.org/resources/12"
LIBRISPEECH_SUBSETS = (
    "dev-clean",
    "dev-other",
    "test-clean",
    "test-other",
    "train-clean-100",
    "train-clean-360",
    "train-other-500",
)
LIBRISPEECH_SHA256 = {
    "dev-clean.tar.gz": "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3",
    "dev-other.tar.gz": "12661c48e8c3fe1de2c1caa4c3e135193bfb1811584f11f569dd12645aa84365",
    "test-clean.tar.gz": "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23",
    "test-other.tar.gz": "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29",
    "train-clean-100.tar.gz": "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2",
    "train-clean-360.tar.gz": "146a56496217e96c14334a160df97fffedd6e0a04e66b9c5af0d40be3c792ecf",
}
_LIBRISPEECH_TOP = "LibriSpeech"
"""The folder every LibriSpeech archive wraps its subset in; unpacking strips it."""
_SCHEMES = ("http", "https", "file")
_CHUNK = 1 << 20
_CORRUPT = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


def official_test_dir(version: str) -> str:
    """The folder (inside the corpus folder) the official test archive is unpacked into."""
    return f"speech_commands_test_set_v{version}"


def download_speech_commands(
    version: str = "0.01",
    dest: str | Path | None = None,
    base_url: str = DEFAULT_BASE_URL,
    progress: bool = True,
    timeout: float = 10.0,
    expected_sha256: dict[str, str] | None = None,
) -> Path:
    """Download and unpack Speech Commands `version`; returns the corpus folder.

    The train archive is unpacked into `dest` (default data/speech_commands_v<version>), the
    official test archive into `dest/speech_commands_test_set_v<version>` (pass it to
    `load_split(test_root=...)`). `expected_sha256` maps archive names to checksums that
    replace or extend KNOWN_SHA256. A corpus unpacked by hand needs no call: load it directly.
    """
    if version not in VERSIONS:
        raise DataError(f"unknown Speech Commands version {version!r}: use one of {VERSIONS}")
    _check_scheme(base_url)
    dest = Path(dest) if dest is not None else Path("data") / f"speech_commands_v{version}"
    checksums = {**KNOWN_SHA256, **(expected_sha256 or {})}
    archives = {
        f"speech_commands_v{version}.tar.gz": dest,
        f"speech_commands_test_set_v{version}.tar.gz": dest / official_test_dir(version),
    }
    offline_hint = (
        f"download {' and '.join(archives)} on a machine with internet and unpack them into "
        f"{' and '.join(str(t) for t in archives.values())}"
    )
    for name, target in archives.items():
        marker = target / f".{name}.unpacked"
        if marker.exists():
            continue
        archive = dest / name
        if not archive.exists():  # an archive left by an interrupted run was already verified
            url = f"{base_url.rstrip('/')}/{name}"
            _fetch(url, archive, checksums.get(name), progress, timeout, base_url, offline_hint)
        _unpack(archive, target, dest)
        marker.touch()
        archive.unlink()
    return dest


def download_librispeech(
    subset: str = "test-clean",
    dest: str | Path | None = None,
    base_url: str = LIBRISPEECH_URL,
    progress: bool = True,
    timeout: float = 10.0,
    expected_sha256: str | None = None,
) -> Path:
    """Download and unpack one LibriSpeech subset into `dest/<subset>`; returns `dest`.

    `dest` (default data/LibriSpeech) is the root to pass to `load_librispeech(dest, subset)`;
    the archive's top folder `LibriSpeech/` is stripped, so several subsets share one root.
    """
    if subset not in LIBRISPEECH_SUBSETS:
        raise DataError(f"unknown LibriSpeech subset {subset!r}: use one of {LIBRISPEECH_SUBSETS}")
    _check_scheme(base_url)
    dest = Path(dest) if dest is not None else Path("data") / _LIBRISPEECH_TOP
    name = f"{subset}.tar.gz"
    marker = dest / f".{name}.unpacked"
    if marker.exists():
        return dest
    url = f"{base_url.rstrip('/')}/{name}"
    archive = dest / name
    if not archive.exists():  # an archive left by an interrupted run was already verified
        hint = f"download {url} on a machine with internet and unpack it into {dest}"
        sha256 = expected_sha256 or LIBRISPEECH_SHA256.get(name)
        _fetch(url, archive, sha256, progress, timeout, base_url, hint)
    _unpack(archive, dest, dest, inner=_LIBRISPEECH_TOP)
    marker.touch()
    archive.unlink()
    return dest


def _check_scheme(base_url: str) -> None:
    if urllib.parse.urlsplit(base_url).scheme not in _SCHEMES:
        raise DataError(f"{base_url}: unsupported URL scheme (use http://, https:// or file://)")


def _fetch(
    url: str,
    path: Path,
    sha256: str | None,
    progress: bool,
    timeout: float,
    base_url: str,
    offline_hint: str,
) -> None:
    """Stream `url` into `path` atomically; nothing is left at `path` unless it checks out."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            atomic_write(path, lambda tmp: _save(response, tmp, url, sha256, progress))
    except urllib.error.HTTPError as exc:
        raise DataError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise DataError(f"cannot reach {base_url} ({exc.reason}): {offline_hint}") from None
    except OSError as exc:  # timeouts and resets while connecting or reading
        raise DataError(f"cannot download {url} ({exc}): {offline_hint}") from None


def _save(response: Any, tmp: Path, url: str, sha256: str | None, progress: bool) -> None:
    """Copy the response to tmp, hashing as it goes; raise if it is short or the hash differs."""
    length = response.headers.get("Content-Length")
    total = int(length) if length else None
    digest = hashlib.sha256()
    received = 0
    with (
        tmp.open("wb") as out,
        tqdm(total=total, unit="B", unit_scale=True, desc=url, disable=not progress) as bar,
    ):
        while chunk := response.read(_CHUNK):
            out.write(chunk)
            digest.update(chunk)
            received += len(chunk)
            bar.update(len(chunk))
    if total is not None and received != total:
        raise DataError(f"{url}: incomplete download ({received} of {total} bytes)")
    if sha256 is not None and digest.hexdigest() != sha256.lower():
        raise DataError(
            f"{url}: checksum mismatch (sha256 {digest.hexdigest()}, expected {sha256})"
        )


def _unpack(archive: Path, target: Path, workdir: Path, inner: str | None = None) -> None:
    """Extract into a temporary folder in `workdir`, then move the entries into `target`.

    With `inner`, the entries of that top folder of the archive (if it has one) are moved.
    tarfile's "data" filter refuses absolute paths, `..` and links out of the folder.
    A corrupt archive is deleted so that the next call downloads it again.
    """
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=workdir))
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(tmp, filter="data")
        target.mkdir(parents=True, exist_ok=True)
        top = tmp / inner if inner and (tmp / inner).is_dir() else tmp
        for entry in top.iterdir():
            _replace(entry, target / entry.name)
    except _CORRUPT as exc:
        archive.unlink(missing_ok=True)
        raise DataError(f"{archive}: corrupt or unsafe archive ({exc}); deleted it") from None
    except OSError as exc:
        raise DataError(f"cannot unpack {archive} into {target} ({exc})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _replace(src: Path, dst: Path) -> None:
    """Move src to dst, replacing a leftover of an earlier, interrupted unpack."""
    if dst.is_dir() and not dst.is_symlink():
        shutil.rmtree(dst)
    os.replace(src, dst)
