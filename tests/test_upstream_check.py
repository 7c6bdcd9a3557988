"""`hib upstream check`: every supported architecture, the real Whisper, and a refusal."""

import json
from pathlib import Path

import pytest
from conftest import TINY_HEADS, TINY_HIDDEN, TINY_KINDS, TINY_LAYERS, _tiny_model

from hib.cli import main
from hib.upstream_check import check_upstream

KEYS = ["name", "model_type", "n_layers", "n_heads", "hidden_size", "mask_vs_removal_max_abs_diff"]


@pytest.mark.parametrize("kind", TINY_KINDS)
def test_check_every_tiny_architecture(kind: str, tmp_path: Path, capsys):
    folder = tmp_path / kind
    _tiny_model(kind).save_pretrained(folder)
    assert main(["upstream", "check", str(folder), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)  # one JSON object, nothing else on stdout
    assert list(result) == KEYS
    assert result["model_type"] == kind
    assert (result["n_layers"], result["n_heads"]) == (TINY_LAYERS, TINY_HEADS)
    assert result["hidden_size"] == TINY_HIDDEN
    assert 0 <= result["mask_vs_removal_max_abs_diff"] < 1e-5


def test_check_whisper_tiny_en(whisper_cache_dir, monkeypatch):
    monkeypatch.setenv("HIB_CACHE", str(whisper_cache_dir))
    result = check_upstream("whisper-tiny.en")
    assert (result["model_type"], result["n_layers"], result["n_heads"]) == ("whisper", 4, 6)
    assert result["hidden_size"] == 384
    assert result["mask_vs_removal_max_abs_diff"] < 1e-4


def test_unsupported_architecture_is_one_line(tmp_path: Path, capsys):
    from transformers import BertConfig

    BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4).save_pretrained(tmp_path)
    assert main(["upstream", "check", str(tmp_path), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error:") and "'bert' is not supported" in captured.err
    assert captured.err.count("\n") == 1
