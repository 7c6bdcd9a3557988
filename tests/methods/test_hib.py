import itertools
import math

import pytest
import torch
from torch.utils.data import TensorDataset

from hib.bottleneck import HeadBottleneck
from hib.errors import HibError
from hib.methods import HeadMethod, get_method
from hib.methods.hib_fit import BetaWarmup, BudgetPenalty
from tests.toy import toy_data, trained_toy_model


def test_hib_ranks_the_only_informative_head_first():
    for informative in (0, 2):
        model = trained_toy_model(informative_head=informative, num_heads=4)
        data = TensorDataset(*toy_data(256, seed=3))
        scores = get_method("hib", beta=0.1, epochs=3, clips=256, seed=0).score(model, data)
        assert scores.shape == (1, 4)
        assert scores[0].argmax().item() == informative
        others = torch.cat([scores[0, :informative], scores[0, informative + 1 :]])
        assert scores[0, informative] > 2 * others.max()


def test_hib_is_deterministic_for_a_seed():
    model = trained_toy_model()
    data = TensorDataset(*toy_data(128, seed=3))
    a = get_method("hib", beta=0.1, epochs=1, clips=128, seed=5).score(model, data)
    b = get_method("hib", beta=0.1, epochs=1, clips=128, seed=5).score(model, data)
    c = get_method("hib", beta=0.1, epochs=1, clips=128, seed=6).score(model, data)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def toy_fit(**options) -> tuple[torch.Tensor, HeadMethod]:
    """HIB on the 4-head toy whose head 0 alone carries the label: (scores, the method)."""
    model = trained_toy_model(informative_head=0, num_heads=4)
    data = TensorDataset(*toy_data(256, seed=3))
    method = get_method("hib", beta=0.1, epochs=3, clips=256, seed=0, **options)
    return method.score(model, data)[0], method


@pytest.mark.parametrize("fraction", [0.5, 1.0])
def test_warmup_starts_beta_at_zero_and_reaches_it(fraction: float):
    _, method = toy_fit(warmup=fraction)
    betas = method.betas
    reached = math.ceil(fraction * len(betas)) - 1  # the warm-up's last step
    assert betas[0] == 0.0 and betas[-1] == pytest.approx(0.1)
    assert all(a < b for a, b in itertools.pairwise(betas[: reached + 1]))
    assert betas[reached:] == pytest.approx([0.1] * (len(betas) - reached))
    schedule = BetaWarmup(0.1, 0.0, 10)
    assert [schedule(step) for step in (0, 9)] == [0.1, 0.1]  # no warm-up: beta throughout


def test_per_head_alpha_is_one_value_per_head():
    model = trained_toy_model(informative_head=0, num_heads=4)
    bottleneck = HeadBottleneck(model.heads(), alpha_per="head")
    assert bottleneck.alpha.shape == (1, 4, 1)
    scores, _ = toy_fit(alpha_per="head")
    assert scores.argmax().item() == 0
    with torch.no_grad():
        bottleneck.alpha.copy_(torch.arange(4.0).view(1, 4, 1))
    lambdas = bottleneck.lambdas()
    assert lambdas.shape == (1, 4, 2)
    assert torch.equal(lambdas[..., 0], lambdas[..., 1])


def test_budget_presses_only_the_heads_a_pruning_at_the_budget_removes():
    """budget 0.25 of 4 heads: one head is pressed to zero capacity; the two other noise heads,
    which HIB's plain penalty closes too, keep theirs; the informative head still ranks first."""
    plain, _ = toy_fit()
    budget, _ = toy_fit(budget=0.25)
    assert (plain[1:] < 0.01).all()
    low, *kept = budget.sort().values.tolist()
    assert low < 0.01 and min(kept) > 1.0
    assert budget.argmax().item() == 0
    penalty = BudgetPenalty(0.5)(torch.tensor([[4.0, 1.0, 3.0, 2.0]]), torch.ones(1, 4, dtype=bool))
    assert penalty.item() == 1.5  # the mean of the lowest two


@pytest.mark.parametrize(
    "options", [{"warmup": 1.5}, {"alpha_per": "layer"}, {"budget": 1.0}, {"budget": 0.0}]
)
def test_bad_variant_options_fail_when_the_method_is_made(options: dict):
    with pytest.raises(HibError):
        get_method("hib", **options)
