"""End to end on a tiny upstream and a fixture corpus in the real layout: train, resume, eval."""

import json

import pytest
import torch
from safetensors.torch import load_file

from hib.cli import main
from hib.config import load_config
from hib.errors import HibError
from hib.train import train
from hib.trainstate import load_train_state
from tests.conftest import make_tiny_upstream
from tests.data.conftest import make_corpus


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    corpus = make_corpus(root / "sc")
    upstream_dir = tmp_path_factory.mktemp("up")
    make_tiny_upstream("whisper", upstream_dir)
    return corpus.root, upstream_dir / "tiny-whisper"


def overrides(setup, *extra) -> list[str]:
    """The tiny run's config overrides (`hib train` arguments)."""
    root, upstream = setup
    return [
        f"data.root={root}",
        f"upstream.name={upstream}",
        "refit.clips=32",
        "train.batch_size=8",
        "train.epochs=2",
        "train.lr=0.01",
        "heads.stats_clips=16",
        *extra,
    ]


def _config(setup, *extra):
    return load_config(None, overrides(setup, *extra))


def test_train_writes_a_complete_run(setup, tmp_path):
    results = train(_config(setup), tmp_path / "run", progress=False)
    run = tmp_path / "run"
    written = {"config.yaml", "model.safetensors", "train_state.safetensors", "results.json"}
    assert written | {"manifest.json", ".hib.lock"} == {p.name for p in run.iterdir()}
    assert not list(run.glob(".*tmp"))  # atomic writes leave no temporaries
    on_disk = json.loads((run / "results.json").read_text())
    assert on_disk["schema"] == 1 and on_disk["task"] == "ks"
    assert 0.0 <= on_disk["accuracy"] <= 1.0
    assert on_disk["accuracy"] == results["accuracy"]
    assert on_disk["upstream"] == {"name": str(setup[1]), "n_layers": 2, "n_heads": 4}
    state = load_file(str(run / "model.safetensors"))
    assert state["heads.mean"].shape == (2, 4, 8)  # head means stored with the model
    assert len(on_disk["train"]["history"]) == 2


def test_bfloat16_evaluation_keeps_the_float32_figure_beside_it(setup, tmp_path):
    results = train(_config(setup, "eval.precision=bfloat16"), tmp_path / "run", progress=False)
    assert results["precision"] == "bfloat16"
    assert abs(results["accuracy"] - results["accuracy_float32"]) <= 0.1
    plain = train(_config(setup, "eval.precision=float32"), tmp_path / "plain", progress=False)
    assert plain["precision"] == "float32" and "accuracy_float32" not in plain


def test_same_seed_same_model(setup, tmp_path):
    train(_config(setup, "train.epochs=1"), tmp_path / "a", progress=False)
    train(_config(setup, "train.epochs=1"), tmp_path / "b", progress=False)
    a = load_file(str(tmp_path / "a" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_continues_exactly(setup, tmp_path, monkeypatch):
    import hib.train

    train(_config(setup), tmp_path / "full", progress=False)
    real_epoch, calls = hib.train.train_epoch, []

    def interrupted_in_epoch_two(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(hib.train, "train_epoch", interrupted_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        train(_config(setup), tmp_path / "part", progress=False)
    monkeypatch.setattr(hib.train, "train_epoch", real_epoch)
    assert not list((tmp_path / "part").glob(".*tmp"))  # nothing half written
    train(_config(setup), tmp_path / "part", resume=True, progress=False)
    full = load_train_state(tmp_path / "full")
    part = load_train_state(tmp_path / "part")
    assert full["history"] == part["history"]
    for key, value in full["head"].items():
        assert torch.allclose(value, part["head"][key], atol=1e-6), key


def test_resume_without_state_is_a_clear_error(setup, tmp_path):
    with pytest.raises(HibError, match="nothing to resume"):
        train(_config(setup), tmp_path / "empty", resume=True, progress=False)


def test_eval_json_on_an_unseen_folder(setup, tmp_path, capsys):
    train(_config(setup, "train.epochs=1"), tmp_path / "run", progress=False)
    other = make_corpus(tmp_path / "other").root
    everything = sorted(
        p.relative_to(other).as_posix()
        for p in other.glob("*/*.wav")
        if not p.parent.name.startswith("_")
    )
    (other / "testing_list.txt").write_text("\n".join(everything) + "\n")
    (other / "validation_list.txt").write_text("")
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run"), "--data", str(other), "--json"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out)
    assert set(result) == {"accuracy", "n", "per_class"}
    assert result["n"] >= len(everything)
    assert out.count("\n") == 1


def test_cli_errors_are_one_line(setup, tmp_path, capsys):
    assert main(["train", "train.lrr=1", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown config key 'train.lrr'") and err.count("\n") == 1
    assert main(["eval", str(tmp_path / "missing"), "--json"]) == 2
    assert "not a run folder" in capsys.readouterr().err
