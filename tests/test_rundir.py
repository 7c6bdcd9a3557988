"""The run manifest: a kill between its two steps leaves it accepting what is on disk; a
folder's first manifest adopts the files already there; a changed file is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from hib.errors import HibError
from hib.io import save_tensors
from hib.rundir import MANIFEST_FILE, read_manifest, save_run_tensors, sha256, verified


def test_a_write_killed_after_its_rename_still_verifies_and_settles(tmp_path: Path):
    save_run_tensors(tmp_path, "model.safetensors", {"w": torch.zeros(3)})
    manifest = read_manifest(tmp_path)
    save_tensors(tmp_path / "model.safetensors", {"w": torch.ones(3)})  # the new file, renamed
    with pytest.raises(HibError, match="sha256 differs"):  # ... but never recorded
        verified(tmp_path, "model.safetensors")
    manifest["pending"]["model.safetensors"] = sha256(tmp_path / "model.safetensors")
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest))  # recorded as pending: accepted
    verified(tmp_path, "model.safetensors")
    save_run_tensors(tmp_path, "scores/a.safetensors", {"scores": torch.zeros(2, 4)})
    settled = read_manifest(tmp_path)
    assert settled["pending"] == {} and set(settled["files"]) == {
        "model.safetensors",
        "scores/a.safetensors",
    }


def test_the_first_manifest_adopts_older_files(tmp_path: Path):
    save_tensors(tmp_path / "model.safetensors", {"w": torch.zeros(3)})  # an older hib's folder
    verified(tmp_path, "model.safetensors")  # no manifest: unchecked
    save_run_tensors(tmp_path, "scores/a.safetensors", {"scores": torch.zeros(2, 4)})
    verified(tmp_path, "model.safetensors")
    (tmp_path / "model.safetensors").write_bytes(b"changed")
    with pytest.raises(HibError, match="model.safetensors: sha256 differs"):
        verified(tmp_path, "model.safetensors")
