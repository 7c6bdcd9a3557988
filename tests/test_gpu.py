"""On a CUDA GPU the same work as on the CPU: training, every method's scores, evaluation,
pruning (re-fit and compensation too) and recognition agree with the CPU's within a tolerance.

Marked `gpu`: skipped, with the reason, where torch sees no GPU (tests/conftest.py);
benchmarks/gpu_check.sh runs them on a GPU machine. Inside them cuDNN's TF32 convolutions
(torch's default, about 1e-3 relative in the waveform stems) are off, as TF32 matrix products
are by default, so the devices differ by their kernels' summation order alone: the tolerances
check where things run, not TF32's rounding.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from hib.config import load_config
from hib.methods import get_method
from hib.pipeline import Run
from hib.train import train
from hib.upstream.whisper_asr import load_whisper_asr
from tests.conftest import save_tiny, spoken_batch
from tests.data.test_fsc import make_fsc
from tests.methods.test_methods import TABLE, UPSTREAMS
from tests.methods.test_methods import upstream_models as upstream_models  # noqa: F401
from tests.tasks.test_asr_task import ctc_run as ctc_run  # noqa: F401
from tests.test_train import _config
from tests.test_train import setup as setup  # noqa: F401

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def full_float32():
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = before


CUDA = "cuda"
FITTED = {"hib": 0.05, "hib-attn": 0.05}
"""Relative tolerance of the methods fitted with Adam (a step of about lr x the gradient's
sign, where a gradient near 0 may take either sign); 1e-3 for every other method."""


def close(got: torch.Tensor, want: torch.Tensor, rtol: float = 1e-3) -> None:
    torch.testing.assert_close(got, want, rtol=rtol, atol=rtol * want.abs().max().item() + 1e-6)


# the toy's float32 losses differ below float32's resolution (tests/methods), so its greedy
# and shapley orders are ties that any summation order may break: real kinds only
@pytest.mark.parametrize("kind", [k for k in UPSTREAMS if k != "toy"])
@pytest.mark.parametrize("case", TABLE, ids=str)
def test_every_method_scores_on_cuda_as_on_the_cpu(case, kind, upstream_models):  # noqa: F811
    model, data = upstream_models[kind]
    on_gpu = copy.deepcopy(model).to(CUDA)
    cpu = get_method(case.name, seed=7, **case.fast).score(model, data)
    gpu = get_method(case.name, seed=7, **case.fast).score(on_gpu, data)
    assert gpu.device.type == "cpu"  # scores come back to the CPU, whatever computed them
    close(gpu, cpu, FITTED.get(case.name, 1e-3))


def _ic_overrides(tmp: Path) -> list[str]:
    """A tiny IC run (Fluent Speech Commands layout): a head trained on features."""
    upstream = save_tiny("whisper", tmp / "tiny-whisper")
    data = ["task=ic", f"data.root={make_fsc(tmp / 'fsc')}", f"upstream.name={upstream}"]
    return [*data, "train.epochs=3", "train.batch_size=2", "train.lr=0.01", "heads.stats_clips=4"]


@pytest.mark.parametrize("task", ["ks", "ic"])  # batches on the fly (pinned), and features
def test_training_on_cuda_matches_the_cpu(task, setup, tmp_path):  # noqa: F811
    ic = _ic_overrides(tmp_path) if task == "ic" else None
    runs = {}
    for device in ("cpu", CUDA):
        extra = [f"device={device}", "eval.precision=float32"]
        config = _config(setup, *extra) if ic is None else load_config(None, ic + extra)
        runs[device] = train(config, tmp_path / device, progress=False)
    cpu, gpu = runs["cpu"], runs[CUDA]
    assert (cpu["device"], gpu["device"]) == ("cpu", CUDA)
    assert abs(gpu["accuracy"] - cpu["accuracy"]) <= 1 / cpu["data"]["n_test"] + 1e-9
    losses = [[e["loss"] for e in r["train"]["history"]] for r in (cpu, gpu)]
    close(torch.tensor(losses[1]), torch.tensor(losses[0]))
    stats = [load_file(str(tmp_path / d / "model.safetensors"))["heads.mean"] for d in runs]
    close(stats[1], stats[0])  # the fill values: one pass of the frozen model


@pytest.fixture(scope="module")
def ks_run(setup, tmp_path_factory) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("gpu") / "run"
    train(_config(setup, "device=cpu", "eval.precision=float32"), out, progress=False)
    return out


def test_evaluation_and_pruning_on_cuda_match_the_cpu(ks_run, tmp_path):
    records = {}
    for device in ("cpu", CUDA):
        run = Run(shutil.copytree(ks_run, tmp_path / device), progress=False, device=device)
        assert run.model.device.type == device and run.precision == "float32"
        run.score("magnitude")  # data-free: the same masks on both
        records[device] = run.prune(
            "magnitude", [0.0, 0.5, 1.0], refit_ratios=[0.5], compensate="proj"
        )
    n = len(run.split("test"))
    for key in ("curve", "curve_refit", "curve_compensated"):
        for cpu, gpu in zip(records["cpu"][key], records[CUDA][key], strict=True):
            assert abs(gpu["accuracy"] - cpu["accuracy"]) <= 1 / n + 1e-9, key


def test_auto_precision_is_bfloat16_on_a_gpu_with_bf16_tensor_cores(setup, tmp_path):  # noqa: F811
    results = train(_config(setup, "device=cuda"), tmp_path / "run", progress=False)
    native = torch.cuda.is_bf16_supported(including_emulation=False)
    assert results["precision"] == ("bfloat16" if native else "float32")
    if native:
        assert abs(results["accuracy"] - results["accuracy_float32"]) <= 0.1


def test_ctc_recognition_and_scores_on_cuda_match_the_cpu(ctc_run):  # noqa: F811
    runs = {device: Run(ctc_run, progress=False, device=device) for device in ("cpu", CUDA)}
    for run in runs.values():  # before `precision` is first read: float32 on both
        run.config.eval.precision = "float32"
    wer = {d: run.evaluate(run.split("test")) for d, run in runs.items()}
    assert abs(wer[CUDA].value - wer["cpu"].value) <= 2 / wer["cpu"].details["words"] + 1e-9
    scores = {d: run.compute_scores("taylor", clips=2) for d, run in runs.items()}
    close(scores[CUDA], scores["cpu"])


def test_whisper_decodes_on_cuda_as_on_the_cpu(whisper_cache_dir):
    asr = load_whisper_asr("30s", cache_dir=whisper_cache_dir)
    waves, lengths, texts = spoken_batch([("the quick brown fox jumps over the lazy dog", "en-us")])
    cpu = (asr.transcribe(waves, lengths), asr.loss(waves, lengths, texts))
    asr.to(CUDA)
    on_gpu = (waves.to(CUDA), lengths.to(CUDA))
    gpu = (asr.transcribe(*on_gpu), asr.loss(*on_gpu, texts))
    assert gpu[0] == cpu[0]
    close(gpu[1].cpu(), cpu[1])
