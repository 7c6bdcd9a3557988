"""ASR through the Task interface: a run without training, every method, WER curves, `hib eval`.

A tiny random CTC checkpoint covers the CTC path and every method fast; the real Whisper tiny.en
on espeak-ng sentences covers the decoder path (encoder and decoder scopes).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from hib.cli import main
from hib.config import load_config
from hib.methods import METHODS
from hib.pipeline import Run
from hib.tasks.wer import normalize
from hib.train import train
from tests.data.test_librispeech import UTTERANCES, make_librispeech
from tests.upstream.test_ctc_asr import make_ctc

SPLITS = ("train", "dev", "test")
WORDS = sum(len(normalize(u[-1]).split()) for u in UTTERANCES)
METHOD_OPTIONS = {"hib": {"beta": 0.1, "epochs": 1}, "attattr": {"steps": 2}}


@pytest.fixture(scope="module")
def ctc_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("asr")
    root = tmp / "libri"
    for split in SPLITS:
        make_librispeech(root, split)
    checkpoint = make_ctc("wav2vec2", tmp)
    config = load_config(
        None,
        [
            "task=asr",
            f"upstream.name={checkpoint}",
            f"data.root={root}",
            "data.splits=[train,dev,test]",
            "heads.stats_clips=8",
        ],
    )
    train(config, tmp / "run", progress=False)
    return tmp / "run"


def test_a_run_records_the_unpruned_wer_and_no_trained_head(ctc_run: Path) -> None:
    results = json.loads((ctc_run / "results.json").read_text())
    assert results["task"] == "asr"
    assert results["metric"] == {"name": "wer", "higher_is_better": False}
    assert results["wer"] >= 0 and results["words"] > 0 and results["data"]["n_test"] == 3
    assert "val_wer" not in results["train"] and results["train"]["history"] == []
    from safetensors.torch import load_file

    stored = load_file(str(ctc_run / "model.safetensors"))
    assert stored and all(k.startswith("heads.") for k in stored)  # statistics only


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_scores_asr_heads(ctc_run: Path, name: str) -> None:
    run = Run(ctc_run, progress=False)
    scores = run.compute_scores(name, clips=2, **METHOD_OPTIONS.get(name, {}))
    assert scores.shape == (2, 4) and torch.isfinite(scores).all()
    if METHODS[name].data_driven and name != "random":
        assert scores.abs().sum() > 0


def test_curves_and_comparison_are_in_wer(ctc_run: Path) -> None:
    from hib.compare import compare, format_table

    run = Run(ctc_run, progress=False)
    run.score("taylor", clips=2)
    record = run.prune("taylor", [0.0, 0.5, 1.0])
    assert [set(p) for p in record["curve"]] == [{"ratio", "pruned", "wer"}] * 3
    assert record["curve"][0]["wer"] == pytest.approx(
        json.loads((ctc_run / "results.json").read_text())["wer"]
    )
    table = compare(run, ["taylor", "random"], seeds=2, clips=2, ratios=[0.0, 0.5])
    assert {"wer@20", "auc", "spearman_ablation"} <= set(table["taylor"])
    assert "wer@" in format_table(table, run.metric)
    with pytest.raises(Exception, match="pretrained"):
        run.refit_curve("taylor", [0.5], 0)


def test_eval_json_on_an_unseen_folder_with_any_split_name(
    ctc_run: Path, tmp_path: Path, capsys
) -> None:
    other = make_librispeech(tmp_path / "elsewhere", "test-real")
    assert main(["eval", str(ctc_run), "--data", str(other), "--split", "test-real", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"wer", "n", "words"} and out["n"] == 3 and out["words"] == WORDS
    Run(ctc_run, progress=False).score("random")
    args = ["eval", str(ctc_run), "--data", str(other), "--split", "test-real", "--json"]
    assert main([*args, "--method", "random", "--ratio", "0.5"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"wer", "n", "words"}


def test_report_names_the_metric(ctc_run: Path) -> None:
    from hib.report import write_report

    Run(ctc_run, progress=False).score("random")
    text = write_report(ctc_run).read_text()
    assert "Unpruned test wer" in text and "WER vs fraction" in text


# --- Whisper tiny.en: the real decoder --------------------------------------------------------
SENTENCES = {
    "train": ["the quick brown fox jumps over the lazy dog", "we will meet at noon tomorrow"],
    "dev": ["a large red boat sailed past the bridge"],
    "test": ["she opened the window and looked outside", "the train leaves at seven"],
}


def _espeak_librispeech(root: Path) -> Path:
    from hib.data.synth import espeak

    espeak.reset()
    for split, texts in SENTENCES.items():
        folder = root / split / "100" / "1"
        folder.mkdir(parents=True)
        lines = []
        for i, text in enumerate(texts):
            utt = f"100-1-{i:04d}"
            audio = espeak.synthesize(text, "en-us")
            sf.write(str(folder / f"{utt}.flac"), np.asarray(audio), 16000)
            lines.append(f"{utt} {text.upper()}\n")
        (folder / "100-1.trans.txt").write_text("".join(lines))
    return root


@pytest.fixture(scope="module")
def whisper_run(tmp_path_factory: pytest.TempPathFactory, whisper_cache_dir: Path) -> Path:
    tmp = tmp_path_factory.mktemp("whisper-asr")
    root = _espeak_librispeech(tmp / "libri")
    config = load_config(None, ["task=asr", f"data.root={root}", "data.splits=[train,dev,test]"])
    train(config, tmp / "run", progress=False)
    return tmp / "run"


@pytest.mark.slow
def test_whisper_run_transcribes_and_prunes_encoder_heads(whisper_run: Path) -> None:
    results = json.loads((whisper_run / "results.json").read_text())
    assert results["wer"] < 0.35  # tiny.en reads clear espeak-ng sentences
    run = Run(whisper_run, progress=False)
    scores = run.compute_scores("hib", clips=2, beta=0.01, epochs=1, min_steps=1)
    assert scores.shape == (4, 6) and torch.isfinite(scores).all()
    curve = run.prune("random", [0.0, 1.0])["curve"]
    assert curve[0]["wer"] == pytest.approx(results["wer"])
    assert curve[1]["wer"] > curve[0]["wer"]  # no encoder head left: the decoder is lost


@pytest.mark.slow
def test_whisper_decoder_scope_scores_and_masks_decoder_heads(whisper_run: Path) -> None:
    run = Run(whisper_run, progress=False)
    run.config.heads.scope = "decoder"
    run.model = run.task.build_model()
    run.model.eval()
    from hib.train import fit_head_stats

    fit_head_stats(run.task, run.model, run.split("train"))
    assert run.model.heads().shape == (8, 6)
    scores = run.compute_scores("taylor", clips=2)
    assert scores.shape == (8, 6) and scores.abs().sum() > 0
    everything = torch.zeros(8, 6, dtype=torch.bool)
    assert run.test_metric(everything) > run.test_metric(torch.ones(8, 6, dtype=torch.bool))
