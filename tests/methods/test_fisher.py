"""Fisher's hooks into pruning: the blocks it hands `Run.score` to store, and its rearrangement
of a ranked mask (the blocks and `fisher_rearranged_mask` themselves: test_methods.py)."""

import pytest
import torch
from torch.utils.data import TensorDataset

from hib.methods import METHODS, get_method
from hib.methods.fisher import Fisher, fisher_rearranged_mask
from hib.prune import prune_mask
from tests.toy import toy_data, trained_toy_model


def test_extras_are_the_blocks_once_scored():
    method = get_method("fisher", clips=16, batch_size=8)
    assert method.extras() == {}
    model = trained_toy_model(informative_head=1)
    scores = method.score(model, TensorDataset(*toy_data(16, seed=3)))
    (blocks,) = method.extras().values()
    assert blocks is method.blocks and blocks.shape == (*scores.shape, scores.shape[1])
    assert torch.allclose(blocks.diagonal(dim1=1, dim2=2).float(), scores)


def test_rearrange_keeps_each_layers_count_and_removed_heads():
    grads = torch.randn(3, 30, 6, generator=torch.Generator().manual_seed(1))
    blocks = grads.transpose(1, 2) @ grads / 30  # (3, 6, 6) PSD, as Fisher's
    alive = torch.ones(3, 6, dtype=torch.bool)
    alive[2, [0, 4]] = False  # removed physically: not candidates, left as the mask has them
    scores = torch.where(alive, blocks.diagonal(dim1=1, dim2=2), torch.zeros(()))
    for n_prune in range(19):
        mask = prune_mask(scores, n_prune)
        rearranged = Fisher.rearrange({"blocks": blocks}, mask, alive)
        assert torch.equal((rearranged & alive).sum(1), (mask & alive).sum(1)), n_prune
        assert torch.equal(rearranged[~alive], mask[~alive])
        assert int((~rearranged).sum()) == int((~mask).sum())
        expected = fisher_rearranged_mask(blocks, (mask & alive).sum(1), alive)
        assert torch.equal(rearranged & alive, expected)


def test_only_fisher_declares_a_rearrangement():
    having = {name for name, cls in METHODS.items() if cls.rearrange_extras is not None}
    assert having == {"fisher"}
    assert all(get_method(name).extras() == {} for name in METHODS if name != "fisher")
    with pytest.raises(NotImplementedError, match="random has no mask rearrangement"):
        METHODS["random"].rearrange({}, torch.ones(1, 2, dtype=torch.bool), torch.ones(1, 2))
