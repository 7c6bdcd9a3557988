import torch
from torch.utils.data import TensorDataset

from hib.methods import get_method
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
