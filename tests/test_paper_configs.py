"""configs/paper: every file loads as it is and runs, with a tiny random checkpoint of its
upstream's architecture and a tiny corpus in its dataset's real layout swapped in by dotted
overrides (the same code path, other sizes): a few training steps, one HIB scoring, one pruned
evaluation on the test split."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

import pytest
import torch

from hib.config import config_file, load_config
from hib.pipeline import Run
from hib.train import train
from tests.conftest import save_tiny
from tests.data.conftest import make_corpus, make_official_test_set
from tests.data.test_fsc import make_fsc
from tests.data.test_librispeech import make_librispeech
from tests.data.test_voxceleb import make_voxceleb
from tests.upstream.test_ctc_asr import make_ctc

PAPER = Path(str(files("hib") / "configs" / "paper"))  # configs/paper links here
FILES = sorted(PAPER.glob("*.yaml"))
TINY = {
    # hub id -> a tiny checkpoint of the same architecture as the hub's config.json: model
    # class, stem norm (group) and layer-norm placement (post-LN) of these base models
    "facebook/wav2vec2-base": lambda d: save_tiny("wav2vec2", d / "wav2vec2"),
    "facebook/hubert-base-ls960": lambda d: save_tiny(
        "hubert", d / "hubert", feat_extract_norm="group", do_stable_layer_norm=False
    ),
    "microsoft/wavlm-base-plus": lambda d: save_tiny("wavlm", d / "wavlm"),
    "facebook/wav2vec2-base-960h": lambda d: make_ctc("wav2vec2", d),  # + its CTC head
}
QUICK = ["train.epochs=1", "heads.stats_clips=4"]


def _corpus(config, root: Path) -> list[str]:
    """A tiny corpus in the layout `config` reads, and the overrides pointing it there."""
    if config.task == "ks":
        make_corpus(root)
        inside = Path(config.data.test_root).relative_to(config.data.root)
        make_official_test_set(root / inside)
        return [f"data.test_root={root / inside}", "train.steps_per_epoch=2"]
    if config.task == "asr":
        for split in config.data.splits:
            make_librispeech(root, split)
        return []
    {"ic": make_fsc, "sid": make_voxceleb}[config.task](root)
    return []


def test_the_grid_is_complete_and_each_file_says_where_its_numbers_come_from():
    tasks: dict[str, set[str]] = {}
    for path in FILES:
        config = load_config(path)
        tasks.setdefault(config.task, set()).add(config.upstream.name)
        assert config.device == "auto" and not Path(config.data.root).is_absolute()
        header = path.read_text().split("\nseed:")[0]
        assert header.startswith("# SUPERB") and "s3prl/downstream/" in header, path.name
    bases = set(TINY) - {"facebook/wav2vec2-base-960h"}
    assert tasks == {"ks": bases, "ic": bases, "sid": bases, "asr": {"facebook/wav2vec2-base-960h"}}
    assert config_file("paper/ks-wav2vec2-base") == PAPER / "ks-wav2vec2-base.yaml"


@pytest.mark.parametrize("task", ["ks", "ic", "sid"])
def test_a_tasks_files_differ_in_the_upstream_alone(task: str):
    trees = [load_config(p).to_dict() for p in FILES if p.name.startswith(f"{task}-")]
    for tree in trees:
        tree["upstream"].pop("name")
    assert len(trees) == 3 and all(tree == trees[0] for tree in trees)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_runs_with_a_tiny_model_and_corpus_swapped_in(path: Path, tmp_path: Path):
    config = load_config(path)
    tiny = TINY[config.upstream.name](tmp_path)
    root = tmp_path / Path(config.data.root).name
    overrides = [f"upstream.name={tiny}", f"data.root={root}", *_corpus(config, root), *QUICK]
    results = train(load_config(path, overrides), tmp_path / "run", progress=False)
    metric = results["metric"]["name"]
    assert metric == ("wer" if config.task == "asr" else "accuracy") and results["device"] == "cpu"
    run = Run(tmp_path / "run", progress=False)
    scores = run.score("hib", beta=0.01, epochs=1, clips=4, min_steps=1)
    assert scores.shape == run.model.heads().shape and torch.isfinite(scores).all()
    curve = run.prune("hib", [0.0, 0.5])["curve"]
    assert curve[0][metric] == pytest.approx(results[metric])
