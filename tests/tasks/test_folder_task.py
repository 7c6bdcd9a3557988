"""The user-task example (hib.tasks.folder, docs/tasks.md): a folder of WAVs, a folder per class."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hib.cli import main
from hib.errors import DataError
from hib.pipeline import Run
from tests.conftest import make_tiny_upstream

CLASSES = {"beep": 440.0, "buzz": 1500.0, "hum": 120.0}


def make_folder(root: Path, splits=("train", "validation", "test"), per_class: int = 6) -> Path:
    rng = np.random.default_rng(0)
    for split in splits:
        for label, freq in CLASSES.items():
            (root / split / label).mkdir(parents=True)
            for i in range(per_class):
                seconds = rng.uniform(0.5, 1.5)  # unequal lengths: padded batches
                t = np.arange(int(seconds * 16000)) / 16000
                x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))
                sf.write(str(root / split / label / f"{i}.wav"), x.astype(np.float32), 16000)
    return root


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("folder")
    root = make_folder(tmp / "sounds")
    make_tiny_upstream("whisper", tmp / "up")
    args = [
        "train",
        "task=folder",
        f"data.root={root}",
        f"upstream.name={tmp / 'up' / 'tiny-whisper'}",
    ]
    args += ["train.epochs=3", "train.batch_size=6", "train.lr=0.01", "heads.stats_clips=12"]
    args += ["refit.clips=24"]
    assert main([*args, "--out", str(tmp / "run")]) == 0
    return tmp / "run"


def test_a_users_folder_trains_scores_and_prunes(run_dir: Path, tmp_path: Path, capsys) -> None:
    results = json.loads((run_dir / "results.json").read_text())
    assert results["task"] == "folder" and results["metric"]["name"] == "accuracy"
    assert set(results["per_class"]) == set(CLASSES) and results["data"]["n_test"] == 18
    run = Run(run_dir, progress=False)
    run.score("taylor", clips=12)
    curve = run.prune("taylor", [0.0, 0.5], refit_ratios=[0.5])
    assert curve["curve"][0]["accuracy"] == pytest.approx(results["accuracy"])
    assert len(curve["curve_refit"]) == 1
    other = make_folder(tmp_path / "other", splits=("recorded",), per_class=2)
    capsys.readouterr()
    assert main(["eval", str(run_dir), "--data", str(other), "--split", "recorded", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 6 and 0 <= out["accuracy"] <= 1


def test_a_class_unknown_to_training_is_one_line(run_dir: Path, tmp_path: Path) -> None:
    from hib.tasks.folder import read_folder

    make_folder(tmp_path / "x", splits=("test",), per_class=1)
    (tmp_path / "x" / "test" / "whistle").mkdir()
    with pytest.raises(DataError, match="whistle"):
        read_folder(tmp_path / "x", "test", classes=("beep", "buzz", "hum"))


def test_a_folder_task_without_its_folder_is_one_line() -> None:
    from hib.config import Config
    from hib.tasks.base import make_task

    config = Config()
    config.task = "folder"
    with pytest.raises(DataError, match="task folder needs data.root") as info:
        make_task(config).root()
    assert "\n" not in str(info.value)
    config.data.root = "/no/such/folder"  # other tasks: data.root must exist
    config.task = "sid"
    with pytest.raises(DataError, match="data folder not found: /no/such/folder"):
        make_task(config).root()
