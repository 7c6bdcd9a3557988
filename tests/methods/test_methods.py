"""The one table every head-importance method runs through (in the manner of Captum's test config).

A row names a method, options small enough for a fast run, whether its score depends on data,
the options under which it must rank the toy's only informative head first (None: the score
never reads labels or outputs, so it cannot know), and a method-specific known answer. The
parametrized tests below run every row on every supported upstream; a registered method without
a row fails `test_table_covers_every_method`.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset

from hib.downstream import UtteranceClassifier
from hib.heads import HeadStats
from hib.methods import METHODS, get_method
from hib.methods.fisher import EXACT_SUBSETS, fisher_rearranged_mask, removal_cost
from hib.methods.l0 import open_probability, sample_gates
from hib.tasks.base import Batch
from tests.conftest import TINY_KINDS, make_tiny_upstream
from tests.toy import toy_data, trained_toy_model

UPSTREAMS = (*TINY_KINDS, "toy", "pruned-whisper")
PRUNED = torch.tensor([[False] * 4, [True, True, False, True]])  # layer 0 left with no head
N_CLASSES = 3


# --- models and data -------------------------------------------------------------------------
@cache
def toy(informative: int = 0, num_heads: int = 4) -> UtteranceClassifier:
    """A trained toy (cached: methods must leave the model as they found it)."""
    return trained_toy_model(informative_head=informative, num_heads=num_heads)


def toy_set(n: int, seed: int = 3) -> TensorDataset:
    return TensorDataset(*toy_data(n, seed=seed))


def double(model: UtteranceClassifier) -> UtteranceClassifier:
    """A float64 copy: the toy's loss is ~1e-8, below float32's resolution for differences."""
    out = copy.deepcopy(model).double()
    stats = model.head_stats
    out.head_stats = HeadStats(stats.mean.double(), stats.std.double(), stats.n_clips)
    return out


@pytest.fixture(scope="module")
def upstream_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple]:
    """kind -> (model, data): tiny random upstreams with a random task head, and the toy.

    "pruned-whisper" lost heads physically, a whole layer included: scores stay on the
    original grid.
    """
    waves = 0.1 * torch.randn(4, 16000, generator=torch.Generator().manual_seed(0))
    speech = TensorDataset(waves, torch.tensor([0, 1, 2, 1]))
    models = {"toy": (toy(), toy_set(4))}
    for kind in TINY_KINDS:
        torch.manual_seed(0)
        model = UtteranceClassifier.build(
            make_tiny_upstream(kind, Path(tmp_path_factory.mktemp(kind))), 3
        )
        model.head_stats = model.heads().fit_stats(iter(waves.split(2)), max_clips=4)
        models[kind] = (model, speech)
    pruned = copy.deepcopy(models["whisper"][0])
    pruned.heads().prune(PRUNED)
    models["pruned-whisper"] = (pruned, speech)
    return models


# --- method-specific known answers -----------------------------------------------------------
def check_magnitude() -> None:
    """Each toy head has one unit v weight and two unit out_proj entries; a zeroed head has 0."""
    model = copy.deepcopy(toy())
    attn = model.upstream.attn
    with torch.no_grad():
        for proj in (attn.q_proj, attn.k_proj, attn.v_proj):
            proj.weight[2:4] = 0.0
        attn.out_proj.weight[:, 2:4] = 0.0
    scores = get_method("magnitude").score(model, toy_set(1))
    assert scores.tolist() == [[3.0, 0.0, 3.0, 3.0]]


def peaked_toy(head: int) -> UtteranceClassifier:
    """The toy with one head attending almost one-hot (to the frame with the largest channel 1)."""
    model = copy.deepcopy(toy())
    attn = model.upstream.attn
    with torch.no_grad():
        attn.q_proj.bias[head * 2] = 10.0
        attn.k_proj.weight[head * 2, 1] = 10.0
    return model


def check_attention_stat(name: str, uniform: float) -> Callable[[], None]:
    def check() -> None:
        # the toy's queries and keys are zero: every head attends uniformly over 4 frames
        scores = get_method(name, clips=8).score(toy(), toy_set(8))
        assert torch.allclose(scores, torch.full((1, 4), uniform), atol=1e-6)
        peaked = get_method(name, clips=8).score(peaked_toy(3), toy_set(8))
        assert peaked[0].argmax().item() == 3
        assert peaked[0, 3] > uniform + 0.5

    return check


def gate_derivatives(model: UtteranceClassifier, data: TensorDataset, eps: float = 1e-4):
    """(clips, L, H): each clip's dL_x/dg per head, central differences through `Heads.gated`."""
    heads, (x, y) = model.heads(), data.tensors
    out = torch.zeros(len(y), *heads.shape, dtype=torch.float64)
    for head in heads:
        losses = []
        for sign in (1, -1):
            gates = torch.ones(heads.shape, dtype=torch.float64)
            gates[head.layer, head.index] += sign * eps
            with torch.no_grad(), heads.gated(gates, fill="mean"):
                losses.append(F.cross_entropy(model(x), y, reduction="none"))
        out[:, head.layer, head.index] = (losses[0] - losses[1]) / (2 * eps)
    return out


def double_set(n: int) -> TensorDataset:
    x, y = toy_set(n).tensors
    return TensorDataset(x.double(), y)


def check_taylor() -> None:
    model, data = double(toy(informative=2)), double_set(32)
    scores = get_method("taylor", clips=32, batch_size=8).score(model, data)
    expected = gate_derivatives(model, data).abs().mean(0).float()
    assert torch.allclose(scores, expected, rtol=1e-4, atol=0)


def check_taylor_norm() -> None:
    model, data = toy(informative=2), toy_set(32)
    plain = get_method("taylor", clips=32).score(model, data)
    normed = get_method("taylor-norm", clips=32).score(model, data)
    assert torch.allclose(normed, plain / plain.norm(dim=1, keepdim=True))
    assert get_method("taylor", normalize=True).options()["normalize"]


def check_fisher() -> None:
    """The diagonal is E_x (dL_x/dg)^2, each layer's block E_x g_x g_x^T (finite differences)."""
    model, data = double(toy(informative=2)), double_set(32)
    method = get_method("fisher", clips=32, batch_size=8)
    scores = method.score(model, data)
    grads = gate_derivatives(model, data)[:, 0]  # (clips, H): the toy's one layer
    assert torch.allclose(scores, grads.pow(2).mean(0, keepdim=True).float(), rtol=1e-3, atol=0)
    block = grads.T @ grads / len(grads)
    assert torch.allclose(method.blocks[0], block, rtol=1e-3, atol=1e-3 * block.abs().max())


def test_fisher_rearrangement_beats_the_diagonal():
    """Heads 0 and 1 interact (F_01 > 0: removing both costs more than their diagonals), heads
    0 and 2 compensate (F_02 < 0). Keeping one of three, the diagonal ranking keeps head 2 and
    removes {0, 1} (cost 1 + 1.2 + 2 * 0.9 = 4.0); the best removal is {0, 2} (1.5)."""
    block = torch.tensor([[1.0, 0.9, -0.5], [0.9, 1.2, 0.0], [-0.5, 0.0, 1.5]])
    blocks = block[None]
    assert removal_cost(block, [0, 1]) == pytest.approx(4.0)
    for limit in (EXACT_SUBSETS, 0):  # exact enumeration, then the greedy search
        assert fisher_rearranged_mask(blocks, [1], exact_limit=limit).tolist() == [[0, 1, 0]]
        # one removal: the diagonal is exact
        assert fisher_rearranged_mask(blocks, [2], exact_limit=limit).tolist() == [[0, 1, 1]]
    alive = torch.tensor([[True, False, True]])  # head 1 removed physically: not a candidate
    assert fisher_rearranged_mask(blocks, [1], alive).tolist() == [[0, 0, 1]]
    with pytest.raises(ValueError):
        fisher_rearranged_mask(blocks, [3], alive)
    # random PSD blocks, 8 heads keeping 3: exact <= greedy <= the diagonal ranking
    grads = torch.randn(2, 20, 8, generator=torch.Generator().manual_seed(0))
    blocks = grads.transpose(1, 2) @ grads / 20
    exact = fisher_rearranged_mask(blocks, [3, 3])
    greedy = fisher_rearranged_mask(blocks, [3, 3], exact_limit=0)
    pair = (exact, greedy)
    for layer, block in enumerate(blocks):
        costs = [removal_cost(block, (~m[layer]).nonzero().flatten().tolist()) for m in pair]
        diagonal = removal_cost(block, block.diagonal().argsort()[:5].tolist())
        assert (exact[layer].sum(), greedy[layer].sum()) == (3, 3)
        assert costs[0] <= costs[1] + 1e-9 <= diagonal + 2e-9


def check_attattr() -> None:
    """IG completeness: per clip, the attributions sum to F(A) - F(0 map) as m grows.

    The toy's one hidden state is layer-normalised, so F(alpha A) is flat for alpha > 0 and
    changes only in an interval near 0 that a Riemann sum cannot see; an out_proj bias, like
    the residual stream of a real layer, makes the path smooth.
    """
    model = double(toy(informative=2))
    with torch.no_grad():
        model.upstream.attn.out_proj.bias.copy_(torch.linspace(-1, 1, 8, dtype=torch.float64))
    x = toy_set(8).tensors[0].double()
    heads = model.heads()
    with torch.no_grad():
        probs = model(x).softmax(-1)
        target = probs.argmax(-1, keepdim=True)
        with heads.masked(torch.zeros(heads.shape), fill="zero"):
            baseline = model(x).softmax(-1).gather(1, target)
    (attr,) = get_method("attattr", steps=400).attributions(model, Batch(x, None))
    gap = (probs.gather(1, target) - baseline).squeeze(1)
    assert gap.abs().max() > 0.1
    assert torch.allclose(attr.sum(dim=(1, 2, 3)), gap, atol=0.01 * gap.abs().max().item())


def check_l0() -> None:
    scores = get_method("l0", clips=64, epochs=1).score(toy(), toy_set(64))
    assert ((scores >= 0) & (scores <= 1)).all()
    untrained = get_method("l0", epochs=0, min_steps=0).score(toy(), toy_set(1))
    assert torch.allclose(untrained, torch.full((1, 4), 1 / (1 + (0.1 / 1.1) ** 0.33)))
    # the closed form P(gate != 0) matches the hard-concrete draws
    log_alpha = torch.tensor([-2.0, 0.0, 2.0]).repeat(20000, 1)
    draws = sample_gates(log_alpha, torch.Generator().manual_seed(0))
    assert ((draws >= 0) & (draws <= 1)).all() and (draws == 1).any()
    assert torch.allclose((draws > 0).float().mean(0), open_probability(log_alpha[0]), atol=0.01)


def check_ablation() -> None:
    model, data = toy(informative=2), toy_set(64)
    scores = get_method("ablation", clips=64).score(model, data)
    heads, (x, y) = model.heads(), data.tensors
    with torch.no_grad():
        base = model(x)
        drops, losses = torch.zeros(heads.shape), torch.zeros(heads.shape)
        for head in heads:
            mask = torch.ones(heads.shape)
            mask[head.layer, head.index] = 0
            with heads.masked(mask, fill="mean"):
                logits = model(x)
            drops[head.layer, head.index] = accuracy(base, y) - accuracy(logits, y)
            losses[head.layer, head.index] = F.cross_entropy(logits, y) - F.cross_entropy(base, y)
    assert ((scores - drops).abs() < 0.5 / len(y)).all()
    assert drops[0, 2] > 0.3
    tied = [0, 1, 3]  # no accuracy drop: ranked by the loss increase
    assert scores[0, tied].argsort().tolist() == losses[0, tied].argsort().tolist()


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(-1) == labels).float().mean().item()


def check_random() -> None:
    a = get_method("random", seed=1).score(toy(), toy_set(1))
    b = get_method("random", seed=2).score(toy(), toy_set(1))
    assert not torch.equal(a, b) and ((a >= 0) & (a < 1)).all()


def check_hib_attn() -> None:
    """Similarities lie in [0, 1]; with no pressure (beta = 0) the maps stay near-original."""
    scores = get_method("hib-attn", beta=0.0, clips=64, epochs=1, seed=0).score(toy(), toy_set(1))
    pressed = get_method("hib-attn", beta=1.0, clips=64, epochs=3, seed=0).score(toy(), toy_set(1))
    assert ((scores >= 0) & (scores <= 1)).all()
    assert scores.min() > pressed.min()


def brute_force_shapley(model: UtteranceClassifier, data: TensorDataset) -> torch.Tensor:
    """Shapley values from every coalition of the live heads, v(S) = -CE with S kept."""
    heads, (x, y) = model.heads(), data.tensors
    players = list(heads)
    n = len(players)

    def value(coalition: tuple) -> float:
        mask = torch.zeros(heads.shape)
        for head in coalition:
            mask[head.layer, head.index] = 1
        with torch.no_grad(), heads.masked(mask, fill="mean"):
            return -F.cross_entropy(model(x), y).item()

    out = torch.zeros(heads.shape, dtype=torch.float64)
    for head in players:
        others = [p for p in players if p != head]
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for coalition in itertools.combinations(others, size):
                gain = value((*coalition, head)) - value(coalition)
                out[head.layer, head.index] += weight * gain
    return out


def check_shapley() -> None:
    """Every order of 3 live heads (one of the toy's 4 removed physically): the exact values."""
    model = copy.deepcopy(toy(informative=2))
    model.heads().prune(torch.tensor([[True, False, True, True]]))
    model, data = double(model), double_set(16)
    method = get_method("shapley", clips=16, batch_size=8, permutations=6, tolerance=0.0)
    scores = method.score(model, data)
    assert method.options()["exact"] and method.options()["forwards"] == 2**3
    assert scores[0, 1] == 0  # removed physically: no player
    assert torch.allclose(scores.double(), brute_force_shapley(model, data), rtol=1e-5, atol=1e-7)
    assert scores[0].argmax().item() == 2


def toy_values(model: UtteranceClassifier, data: TensorDataset) -> tuple[float, float]:
    """v(all heads), v(no head): minus the loss with every head kept, and every head mean-filled."""
    heads, (x, y) = model.heads(), data.tensors
    with torch.no_grad():
        full = -F.cross_entropy(model(x), y).item()
        with heads.masked(torch.zeros(heads.shape), fill="mean"):
            empty = -F.cross_entropy(model(x), y).item()
    return full, empty


@pytest.mark.parametrize("tolerance", [0.0, 0.2])
def test_shapley_values_add_up_to_the_gap(tolerance: float):
    """Sampled orders (5 of the 4! = 24): each order's credits telescope to v(all) - v(none),
    up to the truncation's tolerance."""
    model, data = double(toy(informative=1)), double_set(32)
    method = get_method("shapley", clips=32, permutations=5, tolerance=tolerance, seed=3)
    scores = method.score(model, data)
    full, empty = toy_values(model, data)
    gap = full - empty
    assert abs(gap) > 0.1
    assert not method.options()["exact"] and method.options()["forwards"] <= 2 + 5 * 3
    assert abs(scores.double().sum().item() - gap) <= tolerance * abs(gap) + 1e-5 * abs(gap)


def duplicated_toy() -> UtteranceClassifier:
    """Head 0 carries the label, head 2 is its copy, heads 1 and 3 read noise (float64)."""
    return double(trained_toy_model(informative_head=0, num_heads=4, duplicate=2))


def removal_loss(model: UtteranceClassifier, data: TensorDataset, removed) -> float:
    heads, (x, y) = model.heads(), data.tensors
    mask = torch.ones(heads.shape)
    for layer, index in removed:
        mask[layer, index] = 0
    with torch.no_grad(), heads.masked(mask, fill="mean"):
        return F.cross_entropy(model(x), y).item()


def check_greedy() -> None:
    """Noise heads go first, then one duplicate (the other now carries the label alone), and
    after each removal the removed set is the best of its size (every subset tried)."""
    model, data = duplicated_toy(), double_set(64)
    scores = get_method("greedy", clips=64).score(model, data)
    assert sorted(scores[0].tolist()) == [0.25, 0.5, 0.75, 1.0]
    order = [(0, int(i)) for i in scores[0].argsort()]
    assert {order[0][1], order[1][1]} == {1, 3} and {order[2][1], order[3][1]} == {0, 2}
    heads = [(0, i) for i in range(4)]
    for k in range(1, 4):
        best = min(removal_loss(model, data, r) for r in itertools.combinations(heads, k))
        assert removal_loss(model, data, order[:k]) <= best + 1e-12
    # redundancy: either copy alone is (almost) enough, losing both is not
    both = removal_loss(model, data, [(0, 0), (0, 2)])
    assert max(removal_loss(model, data, [(0, i)]) for i in (0, 2)) < 1e-3 * both


def test_greedy_is_the_full_forward_greedy(upstream_models):
    """Trials run from the tried head's layer on the current removals' layer inputs; the same
    removal order as forwards through every layer on two-layer upstreams (one pruned), in
    float64: the random heads change the loss by ~1e-7, float32's rounding would pick ties."""
    for kind in ("wav2vec2", "pruned-whisper"):
        model, (waves, labels) = upstream_models[kind][0], upstream_models[kind][1].tensors
        model, data = double(model), TensorDataset(waves.double(), labels)
        heads = model.heads()
        options = {**SMALL, "clips": 2}
        scores = get_method("greedy", seed=7, **options).score(model, data)
        batches = list(get_method("greedy", seed=7, **options).batches(model, data))
        with torch.no_grad():  # no mask changes the input of layer 0 (the embedding)
            embedded = [(model.layer_inputs(batch)[:1], batch) for batch in batches]
        mask, remaining, order = heads.alive(), list(heads), []
        while remaining:
            losses = []
            for head in remaining:
                trial = mask.clone()
                trial[head.layer, head.index] = False
                with torch.no_grad(), heads.masked(trial, fill="mean"):
                    outputs = [(model.outputs_from(s, b), b) for s, b in embedded]
                    losses.append(sum(model.loss_of(o, b, "sum").item() for o, b in outputs))
            head = remaining.pop(min(range(len(losses)), key=losses.__getitem__))
            mask[head.layer, head.index] = False
            order.append(head)
        ranks = [scores[h.layer, h.index].item() for h in order]
        assert ranks == sorted(ranks), kind


# --- the table -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    name: str
    fast: dict
    data_driven: bool
    toy: dict | None  # options under which the toy's informative head must rank first
    check: Callable[[], None] | None  # None: the method's own test file covers it

    def __str__(self) -> str:
        return self.name


SMALL = {"clips": 4, "batch_size": 2, "min_steps": 1}
TABLE = (
    Case("random", {}, False, None, check_random),
    Case("magnitude", {}, False, None, check_magnitude),
    Case("confidence", SMALL, True, None, check_attention_stat("confidence", 0.25)),
    Case("entropy", SMALL, True, None, check_attention_stat("entropy", -math.log(4))),
    Case("taylor", SMALL, True, {"clips": 64}, check_taylor),
    Case("taylor-norm", SMALL, True, {"clips": 64}, check_taylor_norm),
    Case("attattr", {**SMALL, "steps": 2}, True, {"clips": 32}, check_attattr),
    Case("l0", {**SMALL, "epochs": 1}, True, {"clips": 256, "epochs": 4}, check_l0),
    Case("ablation", SMALL, True, {"clips": 64}, check_ablation),
    Case("fisher", SMALL, True, {"clips": 64}, check_fisher),
    Case("shapley", {**SMALL, "permutations": 2}, True, {"clips": 64}, check_shapley),
    Case("greedy", SMALL, True, {"clips": 64}, check_greedy),
    Case("hib", {**SMALL, "epochs": 1}, True, {"clips": 256, "epochs": 3}, None),
    Case("hib-attn", {**SMALL, "epochs": 1}, True, {"clips": 256, "epochs": 3}, check_hib_attn),
)


def test_table_covers_every_method():
    assert sorted(case.name for case in TABLE) == sorted(METHODS)
    for case in TABLE:
        assert METHODS[case.name].data_driven == case.data_driven, case.name


@pytest.mark.parametrize("kind", UPSTREAMS)
@pytest.mark.parametrize("case", TABLE, ids=str)
def test_runs_on_every_upstream_and_is_deterministic(case: Case, kind: str, upstream_models):
    model, data = upstream_models[kind]
    heads = model.heads()
    first = get_method(case.name, seed=7, **case.fast).score(model, data)
    assert first.shape == heads.shape
    assert torch.isfinite(first).all()
    again = get_method(case.name, seed=7, **case.fast).score(model, data)
    assert torch.equal(first, again)
    if case.name != "random":
        assert (first[~heads.alive()] == 0).all()  # removed heads score nothing
    assert not heads.blocks[0].out_proj._forward_pre_hooks  # every hook came off


@pytest.mark.parametrize("informative", [0, 2])
@pytest.mark.parametrize("case", [c for c in TABLE if c.toy is not None], ids=str)
def test_ranks_the_only_informative_head_first(case: Case, informative: int):
    scores = get_method(case.name, seed=0, **case.toy).score(toy(informative), toy_set(256))
    assert scores[0].argmax().item() == informative, scores


@pytest.mark.parametrize("case", [c for c in TABLE if c.check is not None], ids=str)
def test_known_answer(case: Case):
    case.check()
