"""Accuracy, per class and overall, at either evaluation precision."""

import pytest
import torch
from torch.utils.data import TensorDataset

from hib.evaluate import evaluate, predict, score_predictions
from hib.precision import autocast
from tests.toy import toy_data, trained_toy_model


def test_bfloat16_predicts_what_float32_predicts():
    model = trained_toy_model()
    x, y = toy_data(128, seed=3)
    data = TensorDataset(x, y)
    fp32, labels = predict(model, data, batch_size=32)
    bf16, _ = predict(model, data, batch_size=32, precision="bfloat16")
    assert torch.equal(labels, y)
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
    result = score_predictions(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]))
    assert result.accuracy == 0.75 and result.n == 4
    assert result.per_class["yes"] == 1.0 and result.per_class["up"] == 0.5
