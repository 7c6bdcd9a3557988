"""`device: auto | cpu | cuda`: resolved when a command starts, one line for anything it cannot
be; and `auto` precision on a GPU. What runs on a GPU is in tests/test_gpu.py."""

from __future__ import annotations

import pytest
import torch

from hib.config import load_config
from hib.device import module_device, resolve_device
from hib.errors import ConfigError
from hib.precision import resolve_precision
from hib.tasks.base import Batch

CUDA = torch.device("cuda")


def _one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_auto_is_cuda_exactly_where_torch_sees_a_gpu():
    assert load_config().device == "auto"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("bad", ["gpu", "cuda:1", "CPU", "mps"])
def test_an_unknown_device_is_one_config_line(bad: str):
    with pytest.raises(ConfigError) as err:
        load_config(None, [f"device={bad}"])
    assert f"config key 'device': {bad!r} is not one of auto, cpu, cuda" in _one_line(err)
    with pytest.raises(ConfigError):
        resolve_device(bad)


def test_cuda_without_a_gpu_is_one_line(monkeypatch):
    """The CLI's side, `hib train device=cuda`, is a row of tests/test_bad_inputs.py."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ConfigError) as err:
        resolve_device("cuda")
    assert "cuda, but torch" in _one_line(err) and "no CUDA GPU" in str(err.value)


@pytest.mark.parametrize(("native", "expected"), [(True, "bfloat16"), (False, "float32")])
def test_auto_precision_on_a_gpu_follows_its_bf16_tensor_cores(monkeypatch, native, expected):
    def never() -> float:
        raise AssertionError("a GPU is not measured")

    seen = []

    def supported(including_emulation: bool = True) -> bool:
        seen.append(including_emulation)
        return native

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", supported)
    got = resolve_precision("auto", measure=never, native=lambda: False, device=CUDA)
    assert got == expected and seen == [False]  # emulated bf16 does not count
    assert resolve_precision("float32", device=CUDA) == "float32"


def test_on_the_cpu_batches_and_models_stay_as_they_are():
    batch = Batch(torch.zeros(2, 4), torch.tensor([0, 1]), torch.tensor([4, 3]))
    assert batch.to(torch.device("cpu")) is batch
    assert module_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    assert module_device(torch.nn.ReLU()) == torch.device("cpu")
