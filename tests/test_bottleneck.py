import math

import pytest
import torch

from hib.bottleneck import HeadBottleneck, gaussian_kl
from tests.toy import toy_data, trained_toy_model


@pytest.mark.parametrize("lam", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("c", [-2.0, 0.0, 1.5])
def test_kl_closed_form_matches_monte_carlo(lam, c):
    g = torch.Generator().manual_seed(0)
    mean, std = lam * c, 1 - lam
    z = mean + std * torch.randn(400_000, generator=g, dtype=torch.float64)
    log_q = -0.5 * ((z - mean) / std) ** 2 - math.log(std)
    log_p = -0.5 * z**2
    mc = (log_q - log_p).mean().item()
    closed = gaussian_kl(torch.tensor(c), torch.tensor(lam)).item()
    assert closed == pytest.approx(mc, abs=0.01 + 0.01 * abs(mc))


def _capacity_at(alpha: float) -> torch.Tensor:
    model = trained_toy_model()
    bottleneck = HeadBottleneck(model.heads())
    with torch.no_grad():
        bottleneck.alpha.fill_(alpha)
        with bottleneck.attached(torch.Generator().manual_seed(0)):
            model(toy_data(128)[0])
    return bottleneck.capacity()


def test_capacity_near_zero_when_lambda_near_zero_and_grows_with_it():
    caps = [_capacity_at(a).mean().item() for a in (-12.0, -2.0, 0.0, 2.0, 5.0)]
    assert caps[0] < 1e-3
    assert all(a < b for a, b in zip(caps, caps[1:], strict=False))
    assert caps[-1] > 1.0


def test_closed_bottleneck_passes_only_mean_plus_noise():
    """lambda -> 0: the head output no longer depends on the input, only on the noise."""
    model = trained_toy_model()
    bottleneck = HeadBottleneck(model.heads())
    x1, x2 = toy_data(32, seed=1)[0], toy_data(32, seed=2)[0]
    outs = []
    with torch.no_grad():
        bottleneck.alpha.fill_(-30.0)
        for x in (x1, x2):
            with bottleneck.attached(torch.Generator().manual_seed(0)):
                outs.append(model.upstream(x).hidden_states[-1])
    assert torch.allclose(outs[0], outs[1], atol=1e-5)
    with torch.no_grad():
        plain = [model.upstream(x).hidden_states[-1] for x in (x1, x2)]
    assert not torch.allclose(plain[0], plain[1], atol=1e-3)
