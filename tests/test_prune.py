import pytest
import torch
from torch.utils.data import TensorDataset

from hib.errors import HibError
from hib.prune import curve_area, parse_ratios, prune_mask, sweep
from tests.toy import toy_data, trained_toy_model


def test_parse_ratios():
    assert parse_ratios("0:1:0.25") == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert len(parse_ratios("0:1:0.05")) == 21
    assert parse_ratios("0.2,0.4") == [0.2, 0.4]
    with pytest.raises(HibError):
        parse_ratios("0:2:0.5")
    with pytest.raises(HibError):
        parse_ratios("a:b")


def test_prune_mask_removes_lowest_globally():
    scores = torch.tensor([[0.5, 0.1, 0.9], [0.2, 0.8, 0.05]])
    mask = prune_mask(scores, 3)
    assert mask.tolist() == [[True, False, True], [False, True, False]]
    assert prune_mask(scores, 0).all()
    assert not prune_mask(scores, 6).any()


def test_prune_mask_respects_min_heads_per_layer():
    scores = torch.tensor([[0.1, 0.2, 0.3], [0.9, 0.8, 0.7]])
    mask = prune_mask(scores, 3, min_per_layer=1)
    assert mask[0].sum() == 1 and mask[0, 2]  # layer 0 keeps its best head
    assert mask.sum() == 3
    assert (~prune_mask(scores, 3, min_per_layer=1)).sum() == 3


def test_ties_break_by_position():
    mask = prune_mask(torch.zeros(2, 2), 1)
    assert mask.tolist() == [[False, True], [True, True]]


def test_sweep_on_a_model_with_one_informative_head():
    model = trained_toy_model(informative_head=1, num_heads=4)
    x, y = toy_data(200, seed=9)
    data = TensorDataset(x, y)
    good = torch.tensor([[0.0, 1.0, 0.0, 0.0]])  # ranks the informative head last to go
    bad = -good
    ratios = [0.0, 0.25, 0.5, 0.75, 1.0]
    good_curve = sweep(model, data, good, ratios)
    bad_curve = sweep(model, data, bad, ratios)
    assert [p["pruned"] for p in good_curve] == [0, 1, 2, 3, 4]
    assert good_curve[0]["accuracy"] == 1.0
    assert good_curve[3]["accuracy"] == 1.0  # 3 of 4 heads gone, the informative one kept
    assert bad_curve[1]["accuracy"] < 0.7  # the informative head goes first
    assert good_curve[-1]["accuracy"] == bad_curve[-1]["accuracy"]
    assert curve_area(good_curve) > curve_area(bad_curve)
    bf16_curve = sweep(model, data, good, ratios, precision="bfloat16")
    assert [p["pruned"] for p in bf16_curve] == [0, 1, 2, 3, 4]
    pairs = zip(good_curve, bf16_curve, strict=True)
    assert all(abs(a["accuracy"] - b["accuracy"]) <= 0.02 for a, b in pairs)
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        sweep(model, data, good, ratios, precision="fp8")  # the precision reaches the forward


def test_iterative_sweep_never_revives_a_pruned_head():
    model = trained_toy_model(informative_head=0, num_heads=4)
    data = TensorDataset(*toy_data(64, seed=2))
    seen = []

    def rescore(mask):
        seen.append(mask.clone())
        return torch.tensor([[4.0, 3.0, 2.0, 1.0]]) * (1 if len(seen) % 2 else -1)

    curve = sweep(model, data, torch.zeros(1, 4), [0.25, 0.5, 0.75], rescore=rescore)
    assert [p["pruned"] for p in curve] == [1, 2, 3]
    for before, after in zip(seen, seen[1:], strict=False):
        assert (after <= before).all()
