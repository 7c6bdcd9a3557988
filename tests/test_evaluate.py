"""Accuracy, per class and overall, at either evaluation precision."""

import pytest
import torch
from torch.utils.data import TensorDataset

from hib.evaluate import evaluate, predict
from hib.precision import autocast
from hib.tasks.base import Batch
from tests.toy import toy_data, trained_toy_model


def test_bfloat16_predicts_what_float32_predicts():
    model = trained_toy_model()
    x, y = toy_data(128, seed=3)
    data = TensorDataset(x, y)
    fp32, batches = (
        torch.cat(x) if isinstance(x[0], torch.Tensor) else x
        for x in predict(model, data, batch_size=32)
    )
    bf16 = torch.cat(predict(model, data, batch_size=32, precision="bfloat16")[0])
    assert torch.equal(torch.cat([b.targets for b in batches]), y)
    assert (fp32 == bf16).float().mean() >= 0.95
    assert evaluate(model, data).accuracy > 0.9  # the toy head carries the label


def test_bfloat16_really_runs_in_bfloat16():
    layer = torch.nn.Linear(4, 4)
    with autocast("bfloat16"):
        assert layer(torch.ones(1, 4)).dtype == torch.bfloat16
    with autocast("float32"):
        assert layer(torch.ones(1, 4)).dtype == torch.float32
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        autocast("fp8")


def test_per_class_accuracy():
    from hib.data.speech_commands import CLASSES

    model = trained_toy_model()
    model.classes = CLASSES
    batches = [
        Batch(torch.zeros(2, 0), torch.tensor([0, 1])),
        Batch(torch.zeros(2, 0), torch.tensor([2, 2])),
    ]
    result = model.summarize([torch.tensor([0, 1]), torch.tensor([1, 2])], batches)
    assert result.accuracy == result.value == 0.75 and result.n == 4
    assert result.details["per_class"] == {"yes": 1.0, "no": 1.0, "up": 0.5}
    assert result.to_dict() == {"accuracy": 0.75, "n": 4, "per_class": result.details["per_class"]}
