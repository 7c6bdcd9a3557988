"""Nothing hib reads is unpickled: the training state is safetensors + JSON, and an old pickled
state is converted only by an explicit command, through torch's restricted unpickler."""

from __future__ import annotations

import re
from pathlib import Path

import torch

import hib
from hib.cli import main
from hib.train import train
from hib.trainstate import LEGACY_STATE_FILE, STATE_FILE, load_train_state, pack, unpack
from tests.test_train import _config
from tests.test_train import setup as setup  # noqa: F401  (module fixture)

SOURCES = sorted(Path(hib.__file__).parent.rglob("*.py"))


def test_no_source_can_unpickle():
    for path in SOURCES:
        text = path.read_text()
        assert not re.search(r"^\s*(import|from) (c?pickle|dill|joblib)\b", text, re.M), path
        assert "weights_only=False" not in text, path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, (path, call)


def test_the_state_codec_keeps_tensors_tuples_and_int_keys():
    state = {
        "epoch": 3,
        "optimizer": {"state": {0: {"step": torch.tensor(5.0)}}, "betas": (0.9, 0.999)},
        "rng": (3, (1, 2, 3), None),
        "history": [{"loss": 0.5}],
    }
    tensors, text = pack(state)
    back = unpack(tensors, text)
    assert back["optimizer"]["state"][0]["step"] == 5.0
    assert back["optimizer"]["betas"] == (0.9, 0.999) and back["rng"] == (3, (1, 2, 3), None)
    assert back["history"] == state["history"] and back["epoch"] == 3


def test_an_old_pickled_state_is_converted_only_on_request(setup, tmp_path, capsys):  # noqa: F811
    run = tmp_path / "run"
    train(_config(setup, "train.epochs=1"), run, progress=False)
    old = load_train_state(run)
    old.pop("rng")  # what an older hib wrote: no RNG state
    torch.save(old, run / LEGACY_STATE_FILE)
    (run / STATE_FILE).unlink()
    root, upstream = setup
    argv = [
        "train",
        "--out",
        str(run),
        "--resume",
        f"data.root={root}",
        f"upstream.name={upstream}",
    ]
    argv += ["train.epochs=2", "train.batch_size=8", "heads.stats_clips=16"]
    capsys.readouterr()
    assert main(argv) == 2
    assert f"hib convert-state {run}" in capsys.readouterr().err
    assert main(["convert-state", str(run)]) == 0
    assert load_train_state(run)["history"] == old["history"]
    assert main(argv) == 0
    assert len(load_train_state(run)["history"]) == 2
