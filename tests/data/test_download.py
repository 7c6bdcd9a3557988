from __future__ import annotations

import functools
import hashlib
import io
import socket
import tarfile
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hib.data.download import (
    KNOWN_SHA256,
    LIBRISPEECH_SHA256,
    download_librispeech,
    download_speech_commands,
)
from hib.data.librispeech import load_librispeech
from hib.errors import DataError

TRAIN = "speech_commands_v0.01.tar.gz"
TEST = "speech_commands_test_set_v0.01.tar.gz"
TRAIN_FILES = {
    "./yes/0a7c2a8d_nohash_0.wav": b"RIFF yes",
    "./_background_noise_/white_noise.wav": b"RIFF noise",
    "./validation_list.txt": b"yes/0a7c2a8d_nohash_0.wav\n",
    "./testing_list.txt": b"",
}
TEST_FILES = {"./_silence_/00000000_nohash_0.wav": b"RIFF s", "./no/1_nohash_0.wav": b"RIFF n"}


def make_tar(path: Path, files: dict[str, bytes]) -> str:
    """A .tar.gz of `files`; returns its sha256."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def served(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A folder holding both archives, and their checksums."""
    folder = tmp_path / "served"
    folder.mkdir()
    sums = {TRAIN: make_tar(folder / TRAIN, TRAIN_FILES), TEST: make_tar(folder / TEST, TEST_FILES)}
    return folder, sums


@pytest.fixture
def http_url(served: tuple[Path, dict[str, str]]) -> Iterator[str]:
    yield from _serve(served[0])


def _serve(folder: Path) -> Iterator[str]:
    """`folder` over http://127.0.0.1, in a thread, shut down after the test."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def assert_unpacked(dest: Path) -> None:
    for name, data in TRAIN_FILES.items():
        assert (dest / name).read_bytes() == data
    for name, data in TEST_FILES.items():
        assert (dest / "speech_commands_test_set_v0.01" / name).read_bytes() == data
    assert not (dest / TRAIN).exists() and not (dest / TEST).exists()
    assert not list(dest.glob(".unpack-*")) and not list(dest.glob("*.tmp"))


def test_download_over_file_url_then_skip(
    served: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    folder, sums = served
    dest = tmp_path / "sc"
    out = download_speech_commands(
        "0.01", dest, base_url=folder.as_uri(), progress=False, expected_sha256=sums
    )
    assert out == dest
    assert_unpacked(dest)
    (dest / "yes" / "0a7c2a8d_nohash_0.wav").write_bytes(b"kept")
    # everything is there: no network needed, nothing unpacked again
    download_speech_commands("0.01", dest, base_url=closed_port_url(), progress=False)
    assert (dest / "yes" / "0a7c2a8d_nohash_0.wav").read_bytes() == b"kept"


def test_download_over_http(
    http_url: str, served: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    dest = tmp_path / "sc"
    download_speech_commands("0.01", dest, base_url=http_url, expected_sha256=served[1])
    assert_unpacked(dest)


def test_checksum_mismatch_leaves_nothing(
    http_url: str, served: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    dest = tmp_path / "sc"
    sums = {**served[1], TRAIN: "0" * 64}
    with pytest.raises(DataError, match=f"{TRAIN}: checksum mismatch"):
        download_speech_commands(
            "0.01", dest, base_url=http_url, progress=False, **{"expected_sha256": sums}
        )
    assert not dest.exists() or not any(dest.iterdir())


def test_known_checksums_are_used(served: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    assert TRAIN in KNOWN_SHA256 and len(KNOWN_SHA256[TRAIN]) == 64
    with pytest.raises(DataError, match=KNOWN_SHA256[TRAIN]):
        download_speech_commands("0.01", tmp_path / "sc", base_url=served[0].as_uri())
    assert not any((tmp_path / "sc").iterdir())


def test_unreachable_host_fails_fast(tmp_path: Path) -> None:
    start = time.monotonic()
    url = closed_port_url()
    with pytest.raises(DataError, match=f"cannot reach {url} .*unpack them into") as info:
        download_speech_commands("0.01", tmp_path / "sc", base_url=url, timeout=2.0)
    assert time.monotonic() - start < 3.0
    assert "\n" not in str(info.value)


def test_missing_archive_is_http_404(http_url: str, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="speech_commands_v0.02.tar.gz: HTTP 404"):
        download_speech_commands("0.02", tmp_path / "sc", base_url=http_url, progress=False)


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unsupported URL scheme"):
        download_speech_commands("0.01", tmp_path, base_url="ftp://example.com/data")
    with pytest.raises(DataError, match="unknown Speech Commands version"):
        download_speech_commands("0.03", tmp_path)


def test_corrupt_archive_is_deleted(tmp_path: Path) -> None:
    folder = tmp_path / "served"
    folder.mkdir()
    (folder / TRAIN).write_bytes(b"not a gzip file at all")
    dest = tmp_path / "sc"
    sums = {TRAIN: hashlib.sha256(b"not a gzip file at all").hexdigest()}
    with pytest.raises(DataError, match=f"{TRAIN}: corrupt or unsafe archive"):
        download_speech_commands("0.01", dest, base_url=folder.as_uri(), expected_sha256=sums)
    assert not any(dest.iterdir())


def test_unsafe_member_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "served"
    folder.mkdir()
    sums = {TRAIN: make_tar(folder / TRAIN, {"../escaped.txt": b"x"})}
    dest = tmp_path / "sc"
    with pytest.raises(DataError, match="unsafe archive"):
        download_speech_commands("0.01", dest, base_url=folder.as_uri(), expected_sha256=sums)
    assert not (tmp_path / "escaped.txt").exists() and not any(dest.iterdir())


# --- LibriSpeech ---------------------------------------------------------------------------


def _flac(seconds: float) -> bytes:
    import numpy as np
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(int(16000 * seconds), np.float32), 16000, format="FLAC")
    return buffer.getvalue()


LIBRI_FILES = {
    "LibriSpeech/README.TXT": b"readme",
    "LibriSpeech/test-clean/84/121123/84-121123.trans.txt": b"84-121123-0000 GO DO YOU HEAR\n",
    "LibriSpeech/test-clean/84/121123/84-121123-0000.flac": _flac(0.5),
}


@pytest.fixture
def libri_served(tmp_path: Path) -> tuple[Path, str]:
    folder = tmp_path / "openslr"
    folder.mkdir()
    return folder, make_tar(folder / "test-clean.tar.gz", LIBRI_FILES)


@pytest.fixture
def libri_url(libri_served: tuple[Path, str]) -> Iterator[str]:
    yield from _serve(libri_served[0])


def test_librispeech_over_http_reads_back(
    libri_url: str, libri_served: tuple[Path, str], tmp_path: Path
) -> None:
    dest = tmp_path / "LibriSpeech"
    out = download_librispeech(
        "test-clean", dest, base_url=libri_url, progress=False, expected_sha256=libri_served[1]
    )
    assert out == dest and (dest / "README.TXT").read_bytes() == b"readme"
    data = load_librispeech(dest, "test-clean")
    assert data.ids == ["84-121123-0000"] and data.texts == ["GO DO YOU HEAR"]
    assert not (dest / "test-clean.tar.gz").exists() and not list(dest.glob(".unpack-*"))
    # done once: a second call needs no server
    assert download_librispeech("test-clean", dest, base_url=closed_port_url()) == dest


def test_librispeech_checksum_is_checked(libri_url: str, tmp_path: Path) -> None:
    assert len(LIBRISPEECH_SHA256["test-clean.tar.gz"]) == 64
    with pytest.raises(DataError, match="test-clean.tar.gz: checksum mismatch"):
        download_librispeech("test-clean", tmp_path / "ls", base_url=libri_url, progress=False)
    assert not any((tmp_path / "ls").iterdir())


def test_librispeech_offline_fails_fast(tmp_path: Path) -> None:
    start = time.monotonic()
    url = closed_port_url()
    with pytest.raises(DataError, match=f"cannot reach {url} .*unpack it into") as info:
        download_librispeech("test-clean", tmp_path / "ls", base_url=url, timeout=2.0)
    assert time.monotonic() - start < 3.0 and "\n" not in str(info.value)
    with pytest.raises(DataError, match="unknown LibriSpeech subset 'test-dirty'"):
        download_librispeech("test-dirty", tmp_path / "ls")
