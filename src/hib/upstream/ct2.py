"""Reader for CTranslate2 `model.bin` files, so the packaged Whisper needs no ctranslate2 runtime.

Layout (binary versions 4 to 6, little endian), as written by CTranslate2's `ModelSpec._serialize`:

    u32 binary_version, str spec_name, u32 revision,
    u32 n_variables, then per variable:
        str name, u8 rank, u32 dims[rank], u8 dtype_code, u32 n_bytes, bytes[n_bytes]
    u32 n_aliases, then per alias: str alias, str target

where `str` is a u16 length (counting a trailing NUL) followed by that many bytes.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hib.errors import UpstreamError

SUPPORTED_BINARY_VERSIONS = range(4, 7)
"""4 introduced explicit dtype codes; 6 is what CTranslate2 4.x writes."""

_DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: np.dtype("<u2"),  # bfloat16: raw bits, widened to float32 by `_bfloat16_to_float32`
}
"""CTranslate2's DataType enum (include/ctranslate2/types.h) -> numpy storage dtype."""
_BFLOAT16 = 5


@dataclass
class CT2Model:
    """The variables of a CTranslate2 model, as numpy arrays keyed by their spec names."""

    spec_name: str
    revision: int
    binary_version: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> np.ndarray:
        """A variable by name, following an alias (CTranslate2 stores tied weights once)."""
        try:
            return self.variables[self.aliases.get(name, name)]
        except KeyError:
            raise UpstreamError(f"{self.spec_name} model has no variable {name}") from None

    def scalar(self, name: str) -> int:
        return int(self.get(name).reshape(()))


class _Cursor:
    """Bounds-checked reads over the file bytes: a short file gives a clear error, not garbage."""

    def __init__(self, data: bytes, path: Path):
        self.data = memoryview(data)
        self.path = path
        self.pos = 0

    def take(self, n: int, what: str) -> memoryview:
        if self.pos + n > len(self.data):
            raise UpstreamError(
                f"{self.path}: truncated CTranslate2 model (needs {n} bytes for {what} "
                f"at byte {self.pos}, file has {len(self.data)})"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str, what: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt), what))[0]

    def string(self, what: str) -> str:
        raw = bytes(self.take(self.unpack("H", what), what))
        try:
            return raw.split(b"\0", 1)[0].decode("utf-8")
        except UnicodeDecodeError:
            raise UpstreamError(
                f"{self.path}: corrupt CTranslate2 model ({what} is not text)"
            ) from None


def _bfloat16_to_float32(bits: np.ndarray) -> np.ndarray:
    """numpy has no bfloat16; its bits are the top half of a float32."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def _read_variable(cur: _Cursor) -> tuple[str, np.ndarray]:
    name = cur.string("a variable name")
    rank = cur.unpack("B", f"the rank of {name}")
    shape = tuple(cur.unpack("I", f"the shape of {name}") for _ in range(rank))
    code = cur.unpack("B", f"the dtype of {name}")
    if code not in _DTYPES:
        raise UpstreamError(f"{cur.path}: corrupt CTranslate2 model ({name}: dtype code {code})")
    n_bytes = cur.unpack("I", f"the size of {name}")
    dtype = _DTYPES[code]
    if n_bytes != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
        raise UpstreamError(
            f"{cur.path}: corrupt CTranslate2 model ({name}: {n_bytes} bytes for shape {shape})"
        )
    array = np.frombuffer(cur.take(n_bytes, f"the values of {name}"), dtype=dtype).reshape(shape)
    return name, _bfloat16_to_float32(array) if code == _BFLOAT16 else array


def read_ct2(path: str | Path) -> CT2Model:
    """Read `model.bin` (or the folder holding it) into numpy arrays; UpstreamError if unusable."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UpstreamError(f"{path}: cannot read CTranslate2 model ({exc.strerror})") from None
    cur = _Cursor(data, path)
    version = cur.unpack("I", "the binary version")
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise UpstreamError(
            f"{path}: unsupported CTranslate2 binary version {version} "
            f"(supported: {SUPPORTED_BINARY_VERSIONS.start}-{SUPPORTED_BINARY_VERSIONS.stop - 1})"
        )
    spec_name = cur.string("the spec name")
    revision = cur.unpack("I", "the spec revision")
    variables = dict(_read_variable(cur) for _ in range(cur.unpack("I", "the variable count")))
    n_aliases = cur.unpack("I", "the alias count")
    aliases = {cur.string("an alias"): cur.string("an alias target") for _ in range(n_aliases)}
    if cur.pos != len(data):
        raise UpstreamError(
            f"{path}: corrupt CTranslate2 model ({len(data) - cur.pos} unexpected trailing bytes)"
        )
    missing = sorted(set(aliases.values()) - set(variables))
    if missing:
        raise UpstreamError(f"{path}: corrupt CTranslate2 model (aliases to missing {missing})")
    return CT2Model(spec_name, revision, version, variables, aliases)
