"""Compensation after pruning (hib.compensate): the solve, what it repairs, and where it lands."""

import json
from contextlib import ExitStack

import pytest
import torch

from hib.checkpoint import load_run
from hib.cli import main
from hib.compare import compare, format_table
from hib.compensate import KINDS, Calibration, compensate
from hib.downstream import UtteranceClassifier
from hib.errors import HibError
from hib.evaluate import pruned_model
from hib.pipeline import Run
from hib.report import write_report
from hib.tasks.base import Batch
from tests.conftest import make_tiny_upstream
from tests.test_pipeline import run_dir as run_dir  # noqa: F401  (module fixture)
from tests.test_train import setup as setup  # noqa: F401  (module fixture)
from tests.toy import ToyUpstream


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _model(upstream, waves: torch.Tensor) -> UtteranceClassifier:
    torch.manual_seed(0)
    model = UtteranceClassifier.build(upstream, 3, proj_dim=8).eval()
    model.head_stats = model.heads().fit_stats(iter(waves.split(16)), max_clips=len(waves))
    return model


def _calibration(model, waves: torch.Tensor) -> Calibration:
    return Calibration(model, [Batch(w, None) for w in waves.split(16)], clips=len(waves))


# --- the solve, against a least-squares problem written out here ------------------------------
def _toy(seed: int = 0) -> tuple[UtteranceClassifier, torch.Tensor]:
    """One random 4-head attention layer (no residual), and 48 clips of 6 frames."""
    upstream = ToyUpstream(dim=8, num_heads=4, frames=6)
    with torch.no_grad():
        for i, p in enumerate(upstream.attn.parameters()):
            p.copy_(torch.randn(p.shape, generator=_seeded(100 * seed + i)))
    waves = torch.randn(48, 6 * 8, generator=_seeded(seed + 1))
    return _model(upstream, waves), waves


def _toy_contexts(attn, x: torch.Tensor) -> torch.Tensor:
    """(B, T, h, d) the toy layer's per-head contexts, computed from its weights."""
    b, t, _ = x.shape
    q, k, v = (
        (x @ lin.weight.T + lin.bias).view(b, t, attn.num_heads, -1).transpose(1, 2)
        for lin in (attn.q_proj, attn.k_proj, attn.v_proj)
    )
    weights = torch.softmax(q @ k.transpose(-1, -2) / attn.head_dim**0.5, dim=-1)
    return (weights @ v).transpose(1, 2).double()


def test_lsq_equals_a_direct_least_squares_solve_on_a_toy_layer():
    model, waves = _toy()
    mask = torch.tensor([[True, False, True, True]])
    found = compensate(model, mask, _calibration(model, waves), "lsq")
    attn = model.upstream.attn
    ctx = _toy_contexts(attn, waves.view(48, 6, 8))  # (B, T, 4, 2)
    weight = attn.out_proj.weight.double()
    target = (ctx.flatten(2) @ weight.T).reshape(-1)  # the unpruned block output minus its bias
    kept = [0, 2, 3]
    # one column per kept head (its contribution W_h c_h), then one per output channel (delta)
    columns = [(ctx[:, :, h] @ weight[:, 2 * h : 2 * h + 2].T).reshape(-1) for h in kept]
    frames = ctx.shape[0] * ctx.shape[1]
    design = torch.cat(
        [torch.stack(columns, 1), torch.eye(8, dtype=torch.float64).repeat(frames, 1)], 1
    )
    solution = torch.linalg.lstsq(design, target[:, None]).solution[:, 0]
    assert found.scales[0, kept].double() == pytest.approx(solution[:3].tolist(), abs=1e-5)
    assert found.scales[0, 1] == 0
    assert found.bias[0].double() == pytest.approx(solution[3:].tolist(), abs=1e-5)
    residual = design @ solution - target
    assert found.error[0] == pytest.approx(float((residual**2).mean()), rel=1e-4)
    assert found.target == "block" and found.first_layer == 0 and found.clips == 48


def test_proj_equals_a_direct_least_squares_solve_on_a_toy_layer():
    model, waves = _toy(seed=3)
    mask = torch.tensor([[True, True, False, True]])
    found = compensate(model, mask, _calibration(model, waves), "proj", ridge=0.0)
    attn = model.upstream.attn
    ctx = _toy_contexts(attn, waves.view(48, 6, 8)).reshape(-1, 4, 2)
    weight = attn.out_proj.weight.double()
    target = ctx.flatten(1) @ weight.T  # (n, D)
    kept = [0, 1, 3]
    design = torch.cat([ctx[:, kept].flatten(1), torch.ones(len(ctx), 1, dtype=torch.float64)], 1)
    solution = torch.linalg.lstsq(design, target).solution  # (k * d + 1, D)
    columns = torch.cat([torch.arange(2 * h, 2 * h + 2) for h in kept])
    fitted = weight[:, columns] + found.columns[0][:, columns].double()
    assert (fitted.T - solution[:-1]).abs().max() < 1e-4
    assert (found.bias[0].double() - solution[-1]).abs().max() < 1e-4
    assert found.columns[0][:, 4:6].abs().max() == 0  # the removed head gains nothing


# --- what it repairs, measured from the outside ------------------------------------------------
def _tiny_whisper(tmp_path) -> tuple[UtteranceClassifier, torch.Tensor]:
    """A tiny whisper whose heads matter: attention weights scaled up from their tiny init."""
    upstream = make_tiny_upstream("whisper", tmp_path)
    with torch.no_grad():
        for block in upstream.attention_blocks():
            for lin in (block.q_proj, block.k_proj, block.v_proj, block.out_proj):
                lin.weight.mul_(4.0)
    waves = 0.1 * torch.randn(48, 16000, generator=_seeded(2))
    return _model(upstream, waves), waves


def _stream_errors(model, waves, mask, compensation=None) -> list[float]:
    """Per layer, the mean squared distance of the residual stream after attention (layer input
    plus block output) to the unpruned model's, with the mask (and compensation) applied."""
    heads = model.heads()

    def streams(masked: bool) -> list[torch.Tensor]:
        record = [[] for _ in heads.blocks]
        with ExitStack() as stack, torch.no_grad():
            for layer, block in enumerate(heads.blocks):
                hook = block.module.register_forward_hook(
                    lambda _m, _a, out, layer=layer: record[layer].append(out[0])
                )
                stack.callback(hook.remove)
            if masked:
                stack.enter_context(heads.masked(mask))
                if compensation is not None:
                    stack.enter_context(compensation.applied(heads))
            states = model.upstream.layer_inputs(waves)
        return [states[layer] + record[layer][0] for layer in range(heads.n_layers)]

    pairs = zip(streams(True), streams(False), strict=True)
    return [float(((p - r) ** 2).mean()) for p, r in pairs]


@pytest.mark.parametrize("kind", KINDS)
def test_it_lowers_every_layers_reconstruction_error(tmp_path, kind):
    model, waves = _tiny_whisper(tmp_path)
    calibration = _calibration(model, waves)
    for mask in (
        torch.tensor([[True, False, False, True], [False, True, True, True]]),
        torch.tensor([[False, True, True, True], [True, True, True, True]]),  # layer 1 drifts
    ):
        found = compensate(model, mask, calibration, kind)
        assert found.target == "stream" and found.first_layer == 0
        plain = _stream_errors(model, waves, mask)
        compensated = _stream_errors(model, waves, mask, found)
        assert all(c < p for c, p in zip(compensated, plain, strict=True)), (
            plain,
            compensated,
        )
        assert compensated[0] == pytest.approx(found.error[0], rel=1e-3)
        assert plain[0] == pytest.approx(found.error_plain[0], rel=1e-3)


def _layer_outputs(model, waves, mask=None, compensation=None) -> list[torch.Tensor]:
    """Each layer's output (the raw states after layers 0..L-1), masked and compensated."""
    heads = model.heads()
    with ExitStack() as stack, torch.no_grad():
        if mask is not None:
            stack.enter_context(heads.masked(mask))
        if compensation is not None:
            stack.enter_context(compensation.applied(heads))
        return model.upstream.layer_inputs(waves)[1:]


def _fc2_normal_equations(model, waves, mask, found) -> float:
    """How far layer 0's output residual (to the unpruned output) is from orthogonal to fc2's
    inputs and to a constant: 0 at a least-squares fit of fc2, relative to its scale."""
    fc2 = model.upstream.feed_forward_out(0)
    hidden = []
    handle = fc2.register_forward_hook(lambda _m, a, _y: hidden.append(a[0]))
    try:
        ours = _layer_outputs(model, waves, mask, found)[0]
    finally:
        handle.remove()
    h = hidden[0].reshape(-1, fc2.in_features).double()
    h = torch.cat([h, torch.ones(len(h), 1, dtype=h.dtype)], 1)
    e = (ours - _layer_outputs(model, waves)[0]).reshape(-1, fc2.out_features).double()
    return float((h.T @ e).abs().max() / (h.abs().mean() * e.abs().mean() * len(h)))


def test_ffn_is_the_least_squares_fit_of_the_layer_output(tmp_path):
    """ffn re-fits each layer's fc2 to the unpruned layer output: on the calibration clips the
    layer-0 output's residual is orthogonal to every fc2 input and to a constant (the normal
    equations of a plain least squares, ridge 0; proj's residual is not), its error is what
    the solve reports, and every layer's output is closer to the unpruned one than with proj or
    the plain mask."""
    model, waves = _tiny_whisper(tmp_path)
    calibration = _calibration(model, waves)
    mask = torch.tensor([[True, False, False, True], [False, True, True, True]])
    found = compensate(model, mask, calibration, "ffn", ridge=0.0)
    proj = compensate(model, mask, calibration, "proj")
    ours = _fc2_normal_equations(model, waves, mask, found)
    assert ours < 1e-2 and _fc2_normal_equations(model, waves, mask, proj) > 100 * ours
    reference = _layer_outputs(model, waves)
    outputs = [_layer_outputs(model, waves, mask, c) for c in (found, proj, None)]
    assert float(((outputs[0][0] - reference[0]) ** 2).mean()) == pytest.approx(
        found.ffn_error[0], rel=1e-3
    )
    assert all(f < p for f, p in zip(found.ffn_error, found.ffn_error_plain, strict=True))
    for layer, ref in enumerate(reference):
        errors = [float(((x[layer] - ref) ** 2).mean()) for x in outputs]
        assert errors[0] < errors[1] < errors[2], (layer, errors)


def test_ffn_refuses_a_post_ln_upstream_in_one_line(tmp_path):
    waves = 0.1 * torch.randn(16, 16000, generator=_seeded(6))
    model = _model(make_tiny_upstream("wav2vec2", tmp_path), waves)  # post-LN base layout
    mask = torch.tensor([[True, False, True, False], [True, True, True, True]])
    with pytest.raises(HibError, match=r"norm after their feed-forward \(post-LN\)"):
        compensate(model, mask, _calibration(model, waves), "ffn")


def test_nothing_pruned_leaves_the_model_unchanged(tmp_path):
    model, waves = _tiny_whisper(tmp_path)
    mask = torch.ones(model.heads().shape, dtype=torch.bool)
    found = compensate(model, mask, _calibration(model, waves[:16]), "proj")
    assert found.first_layer == 2 and found.error == [None, None]
    assert torch.equal(found.scales, torch.ones(2, 4)) and not found.bias.any()
    assert pruned_model(model, mask, compensation=found) is model
    with torch.no_grad():
        before = model(waves[:4])
        with found.applied(model.heads()):
            assert torch.equal(model(waves[:4]), before)


def _max_diff_of_prune_and_mask(model, found, waves) -> float:
    heads = model.heads()
    with torch.no_grad():
        with heads.masked(found.mask, fill="zero"), found.applied(heads):
            masked = model(waves)
        physical = pruned_model(model, found.mask, compensation=found)
        assert [b.num_heads for b in physical.heads().blocks] != [4] * heads.n_layers
        return float((physical(waves) - masked).abs().max())


@pytest.mark.parametrize(
    ("kind", "upstream"),
    [("lsq", "whisper"), ("proj", "whisper"), ("ffn", "whisper")]
    + [("lsq", "wav2vec2"), ("proj", "wav2vec2"), ("ffn", "hubert")],
)
def test_pruned_copy_equals_the_compensated_mask(tmp_path, kind, upstream):
    waves = 0.1 * torch.randn(24, 16000, generator=_seeded(4))
    model = _model(make_tiny_upstream(upstream, tmp_path), waves)
    mask = torch.tensor([[True, False, True, False], [False, False, False, False]])  # one empty
    found = compensate(model, mask, _calibration(model, waves), kind)
    assert _max_diff_of_prune_and_mask(model, found, waves[:3]) < 1e-5


def test_pruned_copy_equals_the_compensated_mask_on_whisper_tiny_en(whisper_cache_dir):
    from hib.upstream import load_upstream

    waves = 0.1 * torch.randn(8, 16000, generator=_seeded(5))
    model = _model(load_upstream(cache_dir=whisper_cache_dir), waves)
    mask = torch.ones(model.heads().shape, dtype=torch.bool)
    mask[0, 1] = mask[1, 0] = mask[1, 5] = mask[3, 2] = False
    found = compensate(model, mask, _calibration(model, waves), "proj")
    assert _max_diff_of_prune_and_mask(model, found, waves[:2]) < 1e-5


# --- in a run: curves, comparison, export, bad input ------------------------------------------
def test_curve_compensated_is_a_curve_of_its_own(run_dir, monkeypatch):  # noqa: F811
    import hib.pipeline.compensation as compensating

    run = Run(run_dir, progress=False)
    run.compensate_clips = 16
    run.score("random", clips=16)
    ratios = [0.0, 0.5, 1.0]
    plain = run.prune("random", ratios)
    solves = []
    real = compensating.solve_compensation
    monkeypatch.setattr(
        compensating, "solve_compensation", lambda *a, **k: solves.append(1) or real(*a, **k)
    )
    record = run.prune("random", ratios, compensate="lsq")
    assert record["curve"] == plain["curve"]  # never mixed with the compensated one
    curve = record["curve_compensated"]
    assert [p["ratio"] for p in curve] == ratios
    assert [p["pruned"] for p in curve] == [p["pruned"] for p in plain["curve"]]
    assert curve[0]["accuracy"] == plain["curve"][0]["accuracy"]  # ratio 0: the model itself
    assert record["compensate"]["kind"] == "lsq" and record["compensate"]["clips"] == 16
    stored = json.loads((run_dir / "results.json").read_text())["methods"]["random"]
    assert stored["curve_compensated"] == curve and stored["curve"] == plain["curve"]
    n_solved = len(solves)
    assert 0 < n_solved <= 3 * len(ratios)  # random's 3 seeds, masks met again are memoised
    run.prune("random", ratios, compensate="lsq")
    assert len(solves) == n_solved  # every mask's compensation and metric memoised


def test_compare_gets_a_compensated_column(run_dir):  # noqa: F811
    run = Run(run_dir, progress=False)
    run.compensate_clips = 16
    table = compare(run, ["random"], seeds=2, clips=8, ratios=[0, 0.5, 1], compensate="proj")
    for name, row in table.items():
        assert len(row["curves_per_seed_compensated"]) == 2, name
        assert 0 <= row["auc_compensated"] <= 1
        assert row["curve_compensated"][0]["accuracy"] == row["curve"][0]["accuracy"]
        assert "accuracy@40_compensated" in row
    stored = json.loads((run_dir / "results.json").read_text())["comparison"]
    assert stored["compensate"]["kind"] == "proj"
    assert "AUC comp." in format_table(table, run.metric)
    html = write_report(run_dir).read_text()
    section = html[html.index("Comparison of every method") :]
    assert "<th>AUC compensated</th>" in section and "least-squares repair" in section
    row = section[section.index("<tr><th>random</th>") :].split("</tr>")[0]
    assert f"<td>{100 * table['random']['auc_compensated']:.1f} %</td>" in row


@pytest.mark.parametrize("kind", KINDS)
def test_export_folds_the_compensation_in(run_dir, tmp_path, kind):  # noqa: F811
    run = Run(run_dir, progress=False)
    run.compensate_clips = 16
    run.score("random", clips=16)
    out = run.export("random", 0.5, tmp_path / "pruned", compensate=kind)
    _, exported = load_run(out)
    assert len(exported.heads()) == 4
    test = run.split("test")
    waves = torch.stack([test[i][0] for i in range(4)])
    mask = run.mask_for("random", 0.5)
    found = run.compensation(mask, kind)
    heads = run.model.heads()
    with torch.no_grad(), heads.masked(mask), found.applied(heads):
        expected = run.model(waves)
    with torch.no_grad():
        assert (exported(waves) - expected).abs().max().item() < 1e-5
    spec = json.loads((out / "pruning.json").read_text())
    assert spec["compensate"]["kind"] == kind and spec["compensate"]["clips"] == 16


def test_bad_compensation_input_is_a_one_line_error(run_dir, capsys):  # noqa: F811
    Run(run_dir, progress=False).score("random", clips=16)
    capsys.readouterr()
    for extra in (["--compensate", "nope"], ["--compensate", "lsq", "--compensate-clips", "0"]):
        code = main(["prune", str(run_dir), "--method", "random", "--ratios", "0.5", *extra])
        err = capsys.readouterr().err
        assert code == 2 and err.startswith("error:") and err.count("\n") == 1, err
    assert main(["export", str(run_dir), "--ratio", "0.5", "--out", "x", "--compensate", "x"]) == 2
    assert "invalid choice" in capsys.readouterr().err
    run = Run(run_dir, progress=False)
    with pytest.raises(HibError, match="unknown compensation 'nope'"):
        run.prune("random", [0.5], compensate="nope")
    model = run.model
    mask = torch.ones(model.heads().shape, dtype=torch.bool)
    with pytest.raises(HibError, match="unknown compensation"):
        compensate(model, mask, None, "ridge")
