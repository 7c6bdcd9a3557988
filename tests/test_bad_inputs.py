"""Bad input through the CLI, one row each: exit code, one error line naming the culprit, and
no file changed in the run folder (nor in the corpus). Audio hib can convert is converted.

Each row gets fresh copies of a trained tiny run and its corpus, damages one thing, runs one
`hib` command in-process and checks what it said.
"""

from __future__ import annotations

import os
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from hib.cli import main
from hib.rundir import MANIFEST_FILE, save_run_tensors
from hib.train import train
from tests import procs
from tests.data.conftest import SR, tone
from tests.test_train import _config
from tests.test_train import setup as setup  # noqa: F401  (module fixture)


@dataclass
class Case:
    run: Path  # a trained run folder (copy)
    corpus: Path  # its corpus (copy)
    upstream: Path
    tmp: Path
    monkeypatch: pytest.MonkeyPatch

    @property
    def clip(self) -> Path:
        """A clip of the test split (the first one testing_list.txt names)."""
        return self.corpus / (self.corpus / "testing_list.txt").read_text().split()[0]

    def eval(self, *extra: str) -> list[str]:
        return ["eval", str(self.run), "--data", str(self.corpus), "--json", *extra]

    def train(self, *overrides: str, root: Path | None = None) -> list[str]:
        out = str(self.tmp / "new-run")
        data = f"data.root={root or self.corpus}"
        return ["train", "--out", out, data, f"upstream.name={self.upstream}", *overrides]

    def evil_pickle(self) -> bytes:
        """A pickle that would create `self.marker` if anything ever unpickled it."""
        return pickle.dumps(_Evil(str(self.marker)))

    @property
    def marker(self) -> Path:
        return self.tmp / "pwned"


class _Evil:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def _librispeech_missing_audio(c: Case) -> list[str]:
    """An ASR run on a LibriSpeech folder whose transcript names a file that is gone."""
    from tests.data.test_librispeech import make_librispeech

    root = c.tmp / "libri"
    for split in ("train", "dev", "test"):
        make_librispeech(root, split)
    next((root / "dev").rglob("174-50561-0000.*")).unlink()
    return c.train("task=asr", "data.splits=[train,dev,test]", root=root)


@dataclass
class Row:
    id: str
    make: Callable[[Case], list[str]]  # damages the case, returns the argv
    culprit: Callable[[Case], str] | str  # what the error line must name
    code: int = 2
    skip: str | None = None


def _write_clip(case: Case, x: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> None:
    sf.write(str(case.clip), x, sr, subtype=subtype)


def _float_clip_with(value: float) -> Callable[[Case], list[str]]:
    def make(case: Case) -> list[str]:
        x = tone(440)
        x[100:110] = value
        _write_clip(case, x, subtype="FLOAT")
        return case.eval()

    return make


def _clip_as(subtype: str, sr: int = SR, stereo: bool = False, seconds: float = 1.0):
    def make(case: Case) -> list[str]:
        x = tone(440, seconds, sr)
        _write_clip(case, np.stack([x, x], axis=1) if stereo else x, sr, subtype)
        return case.eval()

    return make


def _cut_clip(n_bytes: int | None) -> Callable[[Case], list[str]]:
    def make(case: Case) -> list[str]:
        data = case.clip.read_bytes()
        case.clip.write_bytes(data[: len(data) // 2 if n_bytes is None else n_bytes])
        return case.eval()

    return make


def _replace(name: str, content: bytes) -> Callable[[Case], list[str]]:
    def make(case: Case) -> list[str]:
        (case.run / name).write_bytes(content)
        return case.eval()

    return make


def _empty_class_folder(case: Case) -> list[str]:
    for wav in (case.corpus / "left").glob("*.wav"):
        wav.unlink()
    for name in ("validation_list.txt", "testing_list.txt"):
        path = case.corpus / name
        lines = path.read_text().splitlines()
        path.write_text("".join(f"{x}\n" for x in lines if not x.startswith("left/")))
    return case.train()


def _missing_listed_clip(case: Case) -> list[str]:
    with (case.corpus / "testing_list.txt").open("a") as f:
        f.write("yes/deadbeef_nohash_9.wav\n")
    return case.eval()


def _config_file(text: str) -> Callable[[Case], list[str]]:
    def make(case: Case) -> list[str]:
        path = case.tmp / "bad.yaml"
        path.write_text(text)
        return ["train", "--config", str(path), "--out", str(case.tmp / "new-run")]

    return make


def _truncate_model(keep_manifest: bool) -> Callable[[Case], list[str]]:
    def make(case: Case) -> list[str]:
        model = case.run / "model.safetensors"
        model.write_bytes(model.read_bytes()[:-100])
        if not keep_manifest:
            (case.run / MANIFEST_FILE).unlink()
        return case.eval()

    return make


def _tamper_model(case: Case) -> list[str]:
    model = case.run / "model.safetensors"
    data = bytearray(model.read_bytes())
    data[-5] ^= 0x01  # one bit of one weight: same size, still parses
    model.write_bytes(bytes(data))
    return case.eval()


def _pickle_as_model(case: Case) -> list[str]:
    (case.run / "model.safetensors").write_bytes(case.evil_pickle())
    (case.run / MANIFEST_FILE).unlink()  # an old folder: only the parser stands in the way
    return case.eval()


def _legacy_state(case: Case, command: str) -> list[str]:
    torch.save({"epoch": 0, "payload": _Evil(str(case.marker))}, case.run / "train_state.pt")
    (case.run / "train_state.safetensors").unlink()
    if command == "convert":
        return ["convert-state", str(case.run)]
    return ["train", "--out", str(case.run), "--resume", *_overrides_of(case)]


def _overrides_of(case: Case) -> list[str]:
    return [f"data.root={case.corpus}", f"upstream.name={case.upstream}", "train.epochs=1"]


def _wrong_shape_scores(case: Case) -> list[str]:
    save_run_tensors(case.run, "scores/random.safetensors", {"scores": torch.zeros(3, 3)})
    return case.eval("--method", "random", "--ratio", "0.5")


def _unwritable_cache(case: Case) -> list[str]:
    blocker = case.tmp / "a-file"
    blocker.write_text("not a folder\n")
    case.monkeypatch.setenv("HIB_CACHE", str(blocker / "cache"))
    return ["train", "--out", str(case.tmp / "new-run"), f"data.root={case.corpus}"]


def _not_writable_out(case: Case) -> list[str]:
    blocker = case.tmp / "a-file"
    blocker.write_text("not a folder\n")
    return ["train", "--out", str(blocker / "run"), *_overrides_of(case)]


ROWS = [
    # audio: refused with the file named ...
    Row(
        "wav-corrupt",
        lambda c: (c.clip.write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really"), c.eval())[1],
        lambda c: f"{c.clip}: unreadable audio",
    ),
    Row(
        "wav-empty-file",
        lambda c: (c.clip.write_bytes(b""), c.eval())[1],
        lambda c: f"{c.clip}: unreadable",
    ),
    Row("wav-truncated", _cut_clip(None), lambda c: f"{c.clip}: truncated WAV"),
    Row("wav-header-only", _cut_clip(44), lambda c: f"{c.clip}: truncated WAV"),
    Row(
        "wav-header-only-no-data",
        lambda c: (_write_clip(c, np.zeros(0, np.float32)), c.eval())[1],
        lambda c: f"{c.clip}: empty audio",
    ),
    Row("wav-nan", _float_clip_with(np.nan), lambda c: f"{c.clip}: 10 samples are NaN or Inf"),
    Row("wav-inf", _float_clip_with(np.inf), lambda c: f"{c.clip}: 10 samples are NaN or Inf"),
    # ... or converted, where soundfile reads it (exit 0, nothing written)
    Row("wav-all-silent", lambda c: (_write_clip(c, np.zeros(SR, np.float32)), c.eval())[1], "", 0),
    Row("wav-8-bit", _clip_as("PCM_U8"), "", 0),
    Row("wav-24-bit", _clip_as("PCM_24"), "", 0),
    Row("wav-float", _clip_as("FLOAT"), "", 0),
    Row("wav-a-law", _clip_as("ALAW"), "", 0),
    Row("wav-mu-law", _clip_as("ULAW"), "", 0),
    Row("wav-stereo", _clip_as("PCM_16", stereo=True), "", 0),
    Row("wav-8-khz", _clip_as("PCM_16", sr=8000), "", 0),
    Row("wav-longer-than-30-s", _clip_as("PCM_16", seconds=31.0), "", 0),
    # corpora
    Row(
        "data-folder-missing",
        lambda c: ["eval", str(c.run), "--data", str(c.tmp / "nope"), "--json"],
        lambda c: f"{c.tmp / 'nope'}: no such folder",
    ),
    Row(
        "data-folder-not-a-corpus",
        lambda c: ["eval", str(c.run), "--data", str(c.tmp), "--json"],
        lambda c: f"{c.tmp}: not a Speech Commands folder",
    ),
    Row("class-folder-without-clips", _empty_class_folder, "no training clips of keyword 'left'"),
    Row(
        "split-without-clips",
        lambda c: ((c.corpus / "testing_list.txt").write_text(""), c.eval())[1],
        lambda c: f"{c.corpus}: split 'test' has no clips",
    ),
    Row(
        "list-file-names-a-missing-clip",
        _missing_listed_clip,
        lambda c: f"{c.corpus / 'testing_list.txt'}: names 1 missing clip(s)",
    ),
    Row(
        "background-noise-missing",
        lambda c: (shutil.rmtree(c.corpus / "_background_noise_"), c.eval())[1],
        "_background_noise_: no background-noise WAVs",
    ),
    Row(
        "librispeech-transcript-without-audio",
        _librispeech_missing_audio,
        lambda c: "174-50561-0000 has no audio file",
    ),
    # configs
    Row(
        "config-unknown-key",
        lambda c: c.train("train.lrr=1"),
        "unknown config key 'train.lrr' (did you mean 'train.lr'?)",
    ),
    Row(
        "config-file-unknown-section",
        _config_file("trian:\n  epochs: 1\n"),
        "unknown config key 'trian' (did you mean 'train'?)",
    ),
    Row("config-wrong-type", lambda c: c.train("train.epochs=abc"), "'train.epochs'"),
    Row("config-unknown-device", lambda c: c.train("device=gpu"), "'device': 'gpu' is not one"),
    Row(
        "config-cuda-without-a-gpu",
        lambda c: (
            c.monkeypatch.setattr(torch.cuda, "is_available", lambda: False),
            c.train("device=cuda"),
        )[1],
        "'device': cuda, but torch",
    ),
    Row("config-not-yaml", _config_file("a: [1, 2\n"), "bad.yaml: not valid YAML"),
    Row("config-not-a-mapping", _config_file("- 1\n- 2\n"), "bad.yaml: expected a mapping"),
    Row(
        "config-file-missing",
        lambda c: ["train", "--config", str(c.tmp / "none.yaml")],
        "config file not found",
    ),
    Row(
        "unknown-task",
        lambda c: c.train("task=nope"),
        "'task'",  # no task but ks exists yet: the key itself is refused, by name
    ),
    Row(
        "unknown-upstream",
        lambda c: c.train(f"upstream.name={c.tmp / 'no-such-upstream'}"),
        "no-such-upstream",
    ),
    # ratios, methods
    Row("ratio-above-1", lambda c: c.eval("--method", "random", "--ratio", "1.5"), "ratio 1.5"),
    Row("ratio-negative", lambda c: c.eval("--method", "random", "--ratio", "-0.1"), "ratio -0.1"),
    Row("ratio-not-a-number", lambda c: c.eval("--ratio", "abc"), "--ratio: invalid float"),
    Row(
        "ratios-out-of-range",
        lambda c: ["prune", str(c.run), "--method", "random", "--ratios", "0:2:0.5"],
        "ratio 1.5: a pruned fraction must lie in [0, 1]",
    ),
    Row(
        "ratios-zero-step",
        lambda c: ["prune", str(c.run), "--method", "random", "--ratios", "0:1:0"],
        "ratios '0:1:0'",
    ),
    Row(
        "demo-unknown-task",
        lambda c: ["demo", "--tasks", "ks,nope", "--out", str(c.run)],
        "'ks,nope': name each of ks, asr, sid, ic at most once",
    ),
    Row(
        "demo-unknown-upstream",
        lambda c: ["demo", "--upstream", "whisper-huge", "--out", str(c.tmp / "demo")],
        "no packaged Whisper 'whisper-huge'",
    ),
    Row(
        "unknown-method",
        lambda c: ["score", str(c.run), "--method", "nope"],
        "unknown method 'nope'",
    ),
    Row(
        "compare-option-malformed",
        lambda c: ["compare", str(c.run), "--methods", "attattr", "--option", "attattr=3"],
        "--option 'attattr=3': expected METHOD.OPTION=VALUE",
    ),
    Row(
        "compare-option-unknown",
        lambda c: ["compare", str(c.run), "--methods", "attattr", "--option", "attattr.stpes=3"],
        "method 'attattr' has no option 'stpes'",
    ),
    # run folders
    Row(
        "run-folder-missing",
        lambda c: ["eval", str(c.tmp / "none"), "--json"],
        "not a run folder",
    ),
    Row(
        "run-folder-without-model",
        lambda c: ((c.run / "model.safetensors").unlink(), c.eval())[1],
        "no model.safetensors",
    ),
    Row("safetensors-truncated", _truncate_model(True), "model.safetensors: sha256 differs"),
    Row(
        "safetensors-truncated-old-folder",
        _truncate_model(False),
        "model.safetensors: not a readable safetensors file",
    ),
    Row("safetensors-tampered", _tamper_model, "model.safetensors: sha256 differs"),
    Row("pickle-as-safetensors", _pickle_as_model, "not a readable safetensors file"),
    Row(
        "old-pickled-train-state",
        lambda c: _legacy_state(c, "resume"),
        "train_state.pt: a pickle from an older hib, not loaded",
    ),
    Row(
        "convert-a-malicious-train-state",
        lambda c: _legacy_state(c, "convert"),
        "train_state.pt: refused",
    ),
    Row("results-not-json", _replace("results.json", b"{not json"), "results.json: not valid"),
    Row("results-not-an-object", _replace("results.json", b"[1, 2]\n"), "not a results object"),
    Row("manifest-not-json", _replace(MANIFEST_FILE, b"\x00\xff"), "manifest.json: not valid"),
    Row("run-config-not-yaml", _replace("config.yaml", b"seed: [1\n"), "config.yaml: not valid"),
    Row(
        "stored-scores-wrong-shape",
        _wrong_shape_scores,
        "random.safetensors: shape (3, 3), but the upstream has (2, 4) heads",
    ),
    Row("cache-folder-not-writable", _unwritable_cache, "a-file/cache/whisper-tiny.en"),
    Row("run-folder-not-writable", _not_writable_out, "a-file/run/config.yaml: Not a directory"),
]


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


@pytest.fixture(scope="module")
def trained(setup, tmp_path_factory):  # noqa: F811
    from hib.pipeline import Run

    out = tmp_path_factory.mktemp("bad-inputs") / "run"
    train(_config(setup, "train.epochs=1"), out, progress=False)
    Run(out, progress=False).score("random", clips=8)
    return out


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input(row: Row, trained, setup, tmp_path, capsys, monkeypatch):  # noqa: F811
    if row.skip:
        pytest.skip(row.skip)
    case = Case(
        run=shutil.copytree(trained, tmp_path / "run"),
        corpus=shutil.copytree(setup[0], tmp_path / "corpus"),
        upstream=setup[1],
        tmp=tmp_path,
        monkeypatch=monkeypatch,
    )
    argv = row.make(case)
    before = {"run": _files(case.run), "corpus": _files(case.corpus)}
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    lines = procs.error_lines(err)
    assert code == row.code, err
    assert {"run": _files(case.run), "corpus": _files(case.corpus)} == before
    assert not (tmp_path / "new-run").exists()
    assert not case.marker.exists()  # no pickle was ever executed
    if row.code == 0:
        assert not lines, err
        return
    culprit = row.culprit(case) if callable(row.culprit) else row.culprit
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert culprit in lines[0], err
