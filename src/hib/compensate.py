"""Compensation after pruning: a closed-form least-squares repair of each pruned layer.

Once a keep mask is chosen, each layer's attention block is rebuilt from the heads it keeps so
that it reproduces, on calibration clips of the training split, what the *unpruned* layer
computes. With c_h the context of kept head h and W_h its out_proj columns, the compensated
block outputs

    lsq   y = sum_h s_h W_h c_h + b + delta      one real scale per kept head (Kwon et al.
                                                 2022's mask tuning, heads only)
    proj  y = W' c_kept + b + delta              every kept out_proj column re-fitted (ridge
                                                 toward the trained columns)
    ffn   proj, then the layer's feed-forward output projection re-fitted the same way (ridge
          toward its trained weights), so the *layer output* reproduces the unpruned one

and the unknowns minimise the squared distance to the unpruned target: a linear least-squares
problem per layer, solved in float64 from moments of the kept contexts and the target
accumulated batch by batch. No gradient, no training: seconds for a tiny.en run.

Why `ffn`: the block reconstruction repairs the residual stream after attention, but what a
task head reads is each layer's output, and the feed-forward turns what the block left
unrepaired into more error there. In a pre-LN layer (output = stream + W2 h + b2, with h the
feed-forward's hidden activations; `Upstream.feed_forward_out`) the output is linear in W2 and
b2, so re-fitting them to the unpruned output on the compensated model's h is another least
squares (h is 4x wider than a context, so it can cancel more). Post-LN layers norm after that
sum, and `ffn` refuses them.

What is reconstructed: where the upstream adds each attention block's output to the layer
input (`Upstream.residual_attention`: every transformers kind), the target is the unpruned
*residual stream after attention*, i.e. the unpruned block output plus the unpruned layer input
minus the pruned model's layer input (Kwon et al.'s target); the block then also cancels the
drift its input carries. Elsewhere it is the unpruned block output.

Which inputs: the unpruned model gives the target of layer l, on its own inputs; the kept
heads' contexts come from the input the *pruned, already compensated* model gives layer l.
That is Kwon et al.'s layer-wise reconstruction: at test time layer l sees the pruned model's
states, so fitting it on those lets it correct what the layers before it left, which fitting
on unpruned inputs cannot see. Layers are solved in order, each after the ones before it.

A removed head's scale is 0 and delta absorbs every constant, so a compensated model does not
depend on the fill. Layers before the first one that loses a head are left exactly as they are
(ratio 0 is the unpruned model, and evaluation still starts from cached unmasked layer inputs,
hib.layer_cache); layers after it are solved even when they keep every head, since their
inputs drifted. As Kwon et al. do, an lsq solution with a scale beyond +-`max_scale` (10) is
not trusted: that layer keeps scales 1 with delta alone fitted, and `fallback` names it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from hib.errors import HibError
from hib.evaluate import first_changed_layer
from hib.heads import Heads
from hib.tasks.base import Batch, TaskModel

KINDS = ("lsq", "proj", "ffn")
DEFAULT_CLIPS = 256  # calibration clips of the training split
MAX_SCALE = 10.0  # Kwon et al.'s bound on a trusted scale
RIDGE = 1e-3  # proj: ridge weight toward the trained columns, relative to the mean variance
CHUNK_FRAMES = 4096  # frames per float64 product when accumulating the moments


def check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise HibError(f"unknown compensation {kind!r} (choose from {', '.join(KINDS)})")
    return kind


def check_clips(clips: int) -> int:
    if clips < 1:
        raise HibError(f"compensation clips {clips}: need at least 1 calibration clip")
    return clips


@dataclass
class Compensation:
    """What one keep mask's compensation changes, per layer.

    scales (L, H) on the original grid: kept heads' scales (lsq: fitted; proj: 1), 0 for
    removed heads, 1 in layers left as they are. bias (L, D): what each layer's out_proj bias
    gains. columns (L, D, H * head_dim) or None (lsq): what each kept head's out_proj columns
    gain after scaling, on the original grid (zero for removed heads). error_plain and error:
    per layer, the mean squared distance to the target on the calibration clips (the layer's
    compensated inputs) of the mean-filled mask and of the compensated layer; None where a
    layer was left as it was (error_plain also without head statistics). ffn only: ffn_columns
    (L, D, F) and ffn_bias (L, D), what each layer's feed-forward output projection gains, and
    ffn_error_plain / ffn_error, the layer output's distance to the unpruned one before and
    after that re-fit (its attention block already compensated).
    """

    mask: torch.Tensor
    scales: torch.Tensor
    bias: torch.Tensor
    columns: torch.Tensor | None = None
    first_layer: int = 0  # the first layer it changes (n_layers: none)
    error_plain: list[float | None] = field(default_factory=list)
    error: list[float | None] = field(default_factory=list)
    fallback: list[int] = field(default_factory=list)
    ffn_columns: torch.Tensor | None = None
    ffn_bias: torch.Tensor | None = None
    ffn_error_plain: list[float | None] = field(default_factory=list)
    ffn_error: list[float | None] = field(default_factory=list)
    kind: str = "lsq"
    target: str = "stream"
    clips: int = 0
    seconds: float = 0.0

    def digest(self) -> str:
        """sha1 of what decides the compensated model (mask, scales, bias, columns, ffn)."""
        digest = hashlib.sha1(f"{self.kind}{self.first_layer}".encode())
        digest.update(self.mask.to(torch.bool).contiguous().numpy().tobytes())
        for tensor in (self.scales, self.bias, self.columns, self.ffn_columns, self.ffn_bias):
            if tensor is not None:
                digest.update(tensor.float().contiguous().numpy().tobytes())
        return digest.hexdigest()

    def summary(self) -> dict[str, Any]:
        """What results.json records about it."""
        return {
            "kind": self.kind,
            "target": self.target,
            "clips": self.clips,
            "seconds": self.seconds,
            "error_plain": self.error_plain,
            "error": self.error,
            "fallback": self.fallback,
            **(
                {"ffn_error_plain": self.ffn_error_plain, "ffn_error": self.ffn_error}
                if self.ffn_columns is not None
                else {}
            ),
        }

    # --- using it --------------------------------------------------------------------------
    @contextmanager
    def applied(self, heads: Heads) -> Iterator[None]:
        """Inside the block the model computes the compensated pruned model: alone, or inside
        `heads.masked(self.mask, fill)` (removed heads are scaled by 0, so what they pass does
        not matter)."""
        self._check(heads)
        d = heads.head_dim

        def scale(layer: int, ctx: torch.Tensor) -> torch.Tensor:
            if layer < self.first_layer:
                return ctx
            return ctx * self.scales[layer, heads.kept[layer]].to(ctx.device, ctx.dtype)[:, None]

        def shift(layer: int):
            bias = self.bias[layer]
            extra = None
            if self.columns is not None:
                extra = self.columns[layer][:, _grid_columns(heads.kept[layer], d)]

            def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
                out = out + bias.to(out.device, out.dtype)
                if extra is not None:  # args[0]: the context as the scale hook left it
                    out = out + nn.functional.linear(args[0], extra.to(out.device, out.dtype))
                return out

            return hook

        handles = [
            heads.blocks[layer].out_proj.register_forward_hook(shift(layer))
            for layer in range(self.first_layer, heads.n_layers)
            if heads.kept[layer]
        ]
        if self.ffn_columns is not None:
            handles += [
                _feed_forward_out(heads, layer).register_forward_hook(
                    _adding(self.ffn_columns[layer], self.ffn_bias[layer])
                )
                for layer in range(self.first_layer, heads.n_layers)
            ]
        try:
            with heads.replace_context(scale):
                yield
        finally:
            for handle in handles:
                handle.remove()

    @torch.no_grad()
    def prune(self, heads: Heads) -> None:
        """Physically remove the mask's heads with the compensation folded in: each kept head's
        out_proj columns scaled (and re-fitted), each bias plus its change; the same outputs as
        `applied`, within float rounding."""
        self._check(heads)
        heads.prune(self.mask, fill="zero")  # delta holds every constant a fill would add
        d = heads.head_dim
        for layer in range(self.first_layer, heads.n_layers):
            block = heads.blocks[layer]
            kept = heads.kept[layer]
            if block.out_proj.bias is None:
                block.module.out_proj = _with_bias(block.out_proj)
            out_proj = block.out_proj
            weight = out_proj.weight.double()
            if kept:  # else one inert head with zero weights: only the bias matters
                scales = self.scales[layer, kept].double().repeat_interleave(d)
                weight = weight * scales.to(weight.device)
                if self.columns is not None:
                    columns = self.columns[layer][:, _grid_columns(kept, d)]
                    weight = weight + columns.to(weight.device, torch.float64)
            out_proj.weight.copy_(weight.to(out_proj.weight.dtype))
            bias = out_proj.bias.double() + self.bias[layer].to(weight.device, torch.float64)
            out_proj.bias.copy_(bias.to(out_proj.bias.dtype))
            if self.ffn_columns is not None:
                _add_to(
                    _feed_forward_out(heads, layer), self.ffn_columns[layer], self.ffn_bias[layer]
                )

    def _check(self, heads: Heads) -> None:
        if tuple(self.mask.shape) != tuple(heads.shape):
            raise HibError(
                f"a compensation for {tuple(self.mask.shape)} heads does not fit {heads.shape}"
            )


def _feed_forward_out(heads: Heads, layer: int) -> nn.Linear:
    linear = heads.upstream.feed_forward_out(layer)
    if linear is None or linear.bias is None:
        raise HibError(
            f"compensation ffn: {heads.upstream.name}'s layers norm after their feed-forward "
            "(post-LN), so its output projection is not linear in the layer output; use lsq or proj"
        )
    return linear


def _adding(columns: torch.Tensor, bias: torch.Tensor):
    """A forward hook adding `columns` @ input + `bias` to a linear layer's output."""

    def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
        extra = nn.functional.linear(args[0], columns.to(out.device, out.dtype))
        return out + extra + bias.to(out.device, out.dtype)

    return hook


@torch.no_grad()
def _add_to(linear: nn.Linear, columns: torch.Tensor, bias: torch.Tensor) -> None:
    """Fold `_adding`'s change into the layer's own weights (float64 sums)."""
    weight = linear.weight.double() + columns.to(linear.weight.device, torch.float64)
    linear.weight.copy_(weight.to(linear.weight.dtype))
    total = linear.bias.double() + bias.to(linear.bias.device, torch.float64)
    linear.bias.copy_(total.to(linear.bias.dtype))


def _grid_columns(heads: list[int], head_dim: int) -> torch.Tensor:
    """The columns of these heads (original indices) in an (D, H * head_dim) grid matrix."""
    if not heads:
        return torch.zeros(0, dtype=torch.long)
    return torch.cat([torch.arange(h * head_dim, (h + 1) * head_dim) for h in heads])


def _with_bias(linear: nn.Linear) -> nn.Linear:
    new = nn.Linear(linear.in_features, linear.out_features, bias=True)
    new = new.to(linear.weight.device, linear.weight.dtype)
    new.weight.copy_(linear.weight)
    new.bias.zero_()
    new.requires_grad_(linear.weight.requires_grad)
    return new


# --- one layer's least squares ---------------------------------------------------------------
class Moments:
    """Running float64 sums of one layer's problem over frames n: x[n] (m,) the kept heads'
    contexts side by side, r[n] (D,) the target minus the current out_proj bias. The sums live
    on the CPU, where the solvers run (`gelsd` has no GPU kernel), whatever computed the frames.

    Any block y = W x + beta then has the squared error `error(W, beta)`, and the least-squares
    solutions follow from the centred moments, so the frames are never held as one matrix.
    """

    def __init__(self, m: int, dim: int):
        f64 = torch.float64
        self.n, self.dim = 0, dim
        self.xx = torch.zeros(m, m, dtype=f64)
        self.xr = torch.zeros(m, dim, dtype=f64)
        self.x = torch.zeros(m, dtype=f64)
        self.r = torch.zeros(dim, dtype=f64)
        self.rr = torch.zeros((), dtype=f64)

    def add(self, x: torch.Tensor, r: torch.Tensor) -> None:
        """x (n, m) and r (n, D) of some frames."""
        for lo in range(0, r.shape[0], CHUNK_FRAMES):
            xs = x[lo : lo + CHUNK_FRAMES].double().cpu()
            rs = r[lo : lo + CHUNK_FRAMES].double().cpu()
            self.n += rs.shape[0]
            self.xx += xs.T @ xs
            self.xr += xs.T @ rs
            self.x += xs.sum(0)
            self.r += rs.sum(0)
            self.rr += (rs * rs).sum()

    def centred(self) -> tuple[torch.Tensor, torch.Tensor]:
        """sum of (x - mean) (x - mean)^T and of (x - mean) (r - mean)^T."""
        n = max(self.n, 1)
        return (
            self.xx - torch.outer(self.x, self.x) / n,
            self.xr - torch.outer(self.x, self.r) / n,
        )

    def beta(self, weight: torch.Tensor) -> torch.Tensor:
        """The best constant for the linear part `weight` (D, m): the mean residual."""
        return (self.r - weight @ self.x) / max(self.n, 1)

    def error(self, weight: torch.Tensor, beta: torch.Tensor) -> float:
        """Mean squared error per frame and channel of y = weight @ x + beta."""
        total = (
            self.rr
            - 2 * (weight * self.xr.T).sum()
            - 2 * beta @ self.r
            + (weight @ self.xx * weight).sum()
            + 2 * beta @ (weight @ self.x)
            + self.n * beta @ beta
        )
        return float(total.clamp(min=0) / max(self.n * self.dim, 1))


def solve_scales(moments: Moments, weight: torch.Tensor, head_dim: int) -> torch.Tensor:
    """lsq: the scales s (k,) of least squared error for y = sum_h s_h W_h x_h + beta.

    weight (D, k * head_dim) holds the kept heads' columns; head h contributes z_h = W_h x_h,
    so the k x k normal equations are block sums of the centred moments weighted by W^T W.
    """
    k = weight.shape[1] // head_dim
    if not k:
        return weight.new_zeros(0)
    gram, cross = moments.centred()
    blocks = (weight.T @ weight * gram).view(k, head_dim, k, head_dim).sum((1, 3))
    rhs = (weight.T * cross).view(k, head_dim, -1).sum((1, 2))
    return torch.linalg.lstsq(blocks, rhs[:, None], driver="gelsd").solution[:, 0]


def solve_columns(moments: Moments, weight: torch.Tensor, ridge: float = RIDGE) -> torch.Tensor:
    """proj: the columns W' (D, m) of least squared error for y = W' x + beta, plus
    `ridge` x the mean context variance x |W' - weight|^2 (0: plain least squares)."""
    if not weight.shape[1]:
        return weight
    gram, cross = moments.centred()
    lam = ridge * gram.diagonal().mean().clamp(min=0)
    eye = torch.eye(gram.shape[0], dtype=gram.dtype)
    system = gram + lam * eye
    right = cross + lam * weight.T
    if lam > 0:  # positive definite: an LU solve, 20x faster than gelsd at ffn's 1536 inputs
        return torch.linalg.solve(system, right).T
    return torch.linalg.lstsq(system, right, driver="gelsd").solution.T


# --- the layer-by-layer solve ----------------------------------------------------------------
class Calibration:
    """The unpruned model on the calibration clips, computed once for every mask: per batch,
    each layer's input and its target (the block output, plus the layer input where the
    upstream adds it: `Upstream.residual_attention`), minus the out_proj bias; and which
    positions are real (not padding). Memory: 2 x layers x clips x positions x width floats.
    """

    def __init__(self, model: TaskModel, batches: Iterable[Batch], clips: int = DEFAULT_CLIPS):
        check_clips(clips)
        upstream = model.upstream
        heads = model.heads()
        self.kept = [list(k) for k in heads.kept]
        self.target = "stream" if upstream.residual_attention else "block"
        self.inputs: list[list[torch.Tensor]] = []  # per batch, inputs of layers 0..L-1
        self.outputs: list[torch.Tensor] = []  # per batch, the last layer's output
        self.targets: list[list[torch.Tensor]] = []  # per batch, per layer
        self.frames: list[torch.Tensor | None] = []
        self.clips = 0
        model.eval()
        with torch.no_grad(), upstream.attention_kernel():
            for batch in batches:
                waves = batch.waves[: clips - self.clips]
                state = upstream.embed(waves)
                self.frames.append(_real_positions(upstream, batch, waves.shape[0], state))
                inputs, targets = [], []
                for layer, block in enumerate(heads.blocks):
                    following, target = _run_recording(upstream, layer, block.out_proj, state)
                    inputs.append(state)
                    targets.append(target + state if self.target == "stream" else target)
                    state = following
                self.inputs.append(inputs)
                self.outputs.append(state)
                self.targets.append(targets)
                self.clips += waves.shape[0]
                if self.clips >= clips:
                    break
        if not self.clips:
            raise HibError("compensation: no calibration clips (an empty training split?)")

    def layer_output(self, batch: int, layer: int) -> torch.Tensor:
        """The unpruned output of `layer` on calibration batch `batch`."""
        inputs = self.inputs[batch]
        return inputs[layer + 1] if layer + 1 < len(inputs) else self.outputs[batch]

    def check(self, heads: Heads) -> None:
        if heads.kept != self.kept:
            raise HibError("this calibration was computed on another model (its heads differ)")


def _run_recording(
    upstream: Any, layer: int, out_proj: nn.Linear, state: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Layer `layer` on `state`: (its output, its attention-block output minus the bias)."""
    out: list[torch.Tensor] = []
    handle = out_proj.register_forward_hook(lambda _m, _a, y: out.append(y))
    try:
        following = upstream.run_layer(layer, state)
    finally:
        handle.remove()
    return following, out[0] if out_proj.bias is None else out[0] - out_proj.bias


def _real_positions(
    upstream: Any, batch: Batch, n: int, state: torch.Tensor
) -> torch.Tensor | None:
    """(B, T) bool of the positions that are not padding (None: all are)."""
    if batch.lengths is None:
        return None
    try:
        valid = upstream.output_frames(batch.lengths[:n])
    except NotImplementedError:
        return None
    return torch.arange(state.shape[1], device=state.device)[None, :] < valid[:, None]


def _frames(x: torch.Tensor, frames: torch.Tensor | None) -> torch.Tensor:
    """(B, T, ...) -> (n, ...) over the real positions."""
    return x[frames] if frames is not None else x.reshape(-1, *x.shape[2:])


@torch.no_grad()
def compensate(
    model: TaskModel,
    mask: torch.Tensor,
    calibration: Calibration,
    kind: str = "lsq",
    max_scale: float = MAX_SCALE,
    ridge: float = RIDGE,
) -> Compensation:
    """The `kind` compensation of `mask` (L, H keep-mask) solved on `calibration` (training
    clips of the same model), layer by layer: float32 forwards, float64 sums and solves."""
    check_kind(kind)
    if model.head_source() is not model.upstream:
        raise HibError("compensation reaches upstream heads only, not the decoder scope")
    start = time.perf_counter()
    model.eval()
    heads = model.heads()
    calibration.check(heads)
    upstream = model.upstream
    mask = mask.to(torch.bool).clone()
    first = first_changed_layer(model, mask)
    dim = heads.blocks[0].out_proj.out_features
    columns = ffn_columns = ffn_bias = None
    if kind != "lsq":
        columns = torch.zeros(heads.n_layers, dim, heads.n_heads * heads.head_dim)
    if kind == "ffn":
        hidden = _feed_forward_out(heads, 0).in_features
        ffn_columns = torch.zeros(heads.n_layers, dim, hidden)
        ffn_bias = torch.zeros(heads.n_layers, dim)
    result = Compensation(
        mask=mask,
        scales=mask.to(torch.float32).clone(),
        bias=torch.zeros(heads.n_layers, dim),
        columns=columns,
        first_layer=first,
        error_plain=[None] * heads.n_layers,
        error=[None] * heads.n_layers,
        ffn_columns=ffn_columns,
        ffn_bias=ffn_bias,
        ffn_error_plain=[None] * heads.n_layers,
        ffn_error=[None] * heads.n_layers,
        kind=kind,
        target=calibration.target,
        clips=calibration.clips,
    )
    if first < heads.n_layers:
        students = [inputs[first] for inputs in calibration.inputs]
        with upstream.attention_kernel():
            for layer in range(first, heads.n_layers):
                _solve_layer(heads, layer, calibration, students, result, max_scale, ridge)
                if kind == "ffn":
                    students = _solve_feed_forward(
                        heads, layer, calibration, students, result, ridge
                    )
                    continue
                with result.applied(heads):
                    students = [upstream.run_layer(layer, state) for state in students]
    result.seconds = time.perf_counter() - start
    return result


def _moments(
    heads: Heads, layer: int, local: list[int], calibration: Calibration, students: list
) -> Moments:
    """The layer's moments over the calibration clips: the kept heads' contexts on the
    compensated model's input, the target from the unpruned model's."""
    moments = Moments(len(local) * heads.head_dim, heads.blocks[layer].out_proj.out_features)
    for b, student in enumerate(students):
        with heads.capture() as record:
            heads.upstream.run_layer(layer, student)
        r = calibration.targets[b][layer]
        if calibration.target == "stream":  # the input's drift is the block's to cancel too
            r = r - student
        frames = calibration.frames[b]
        ctx = _frames(record[layer][0], frames)[:, local]  # (n, k, d)
        moments.add(ctx.reshape(ctx.shape[0], -1), _frames(r, frames))
    return moments


def _solve_feed_forward(
    heads: Heads,
    layer: int,
    calibration: Calibration,
    students: list[torch.Tensor],
    result: Compensation,
    ridge: float,
) -> list[torch.Tensor]:
    """ffn: re-fit the layer's feed-forward output projection (weights ridge toward the trained
    ones, and its bias) so that the layer, its block already compensated, outputs what the
    unpruned layer does on the calibration clips; returns the compensated layer's outputs (the
    next layer's inputs) from the same pass, since the re-fit only adds (W2' - W2) h + b'."""
    linear = _feed_forward_out(heads, layer)
    moments = Moments(linear.in_features, linear.out_features)
    passes = []
    for b, student in enumerate(students):
        seen: list[tuple[torch.Tensor, torch.Tensor]] = []
        handle = linear.register_forward_hook(lambda _m, a, y, seen=seen: seen.append((a[0], y)))
        try:
            with result.applied(heads):
                output = heads.upstream.run_layer(layer, student)
        finally:
            handle.remove()
        (hidden, projected), frames = seen[0], calibration.frames[b]
        passes.append((output, hidden))
        stream = output - projected  # what the layer adds the projection to
        r = calibration.layer_output(b, layer) - stream
        if linear.bias is not None:
            r = r - linear.bias
        moments.add(_frames(hidden, frames), _frames(r, frames))
    weight = linear.weight.detach().double().cpu()
    bias = torch.zeros(weight.shape[0], dtype=torch.float64)
    result.ffn_error_plain[layer] = moments.error(weight, bias)
    fitted = solve_columns(moments, weight, ridge)
    beta = moments.beta(fitted)
    result.ffn_error[layer] = moments.error(fitted, beta)
    result.ffn_columns[layer] = (fitted - weight).float()
    result.ffn_bias[layer] = beta.float()
    adding = _adding(result.ffn_columns[layer], result.ffn_bias[layer])
    return [adding(linear, (hidden,), output) for output, hidden in passes]


def _solve_layer(
    heads: Heads,
    layer: int,
    calibration: Calibration,
    students: list[torch.Tensor],
    result: Compensation,
    max_scale: float,
    ridge: float,
) -> None:
    """Fill in `result`'s scales, bias (and columns) and errors of one layer."""
    d = heads.head_dim
    kept = heads.kept[layer]
    local = [i for i, h in enumerate(kept) if result.mask[layer, h]]
    moments = _moments(heads, layer, local, calibration, students)
    weight = heads.blocks[layer].out_proj.weight.detach().double().cpu()
    trained = weight[:, _grid_columns(local, d)]  # the kept heads' columns, (D, k * d)
    if heads.stats is not None:  # the mean-filled mask: kept heads as trained, removed: mean
        filled = torch.zeros(weight.shape[0], dtype=torch.float64)
        for i, h in enumerate(kept):
            if not result.mask[layer, h]:
                filled += weight[:, i * d : (i + 1) * d] @ heads.stats.mean[layer, h].double()
        result.error_plain[layer] = moments.error(trained, filled)
    if result.kind == "lsq":
        s = solve_scales(moments, trained, d)
        if len(s) and (not torch.isfinite(s).all() or s.abs().max() > max_scale):
            result.fallback.append(layer)
            s = torch.ones_like(s)
        fitted = trained * s.repeat_interleave(d)
        for value, i in zip(s.tolist(), local, strict=True):
            result.scales[layer, kept[i]] = value
    else:
        fitted = solve_columns(moments, trained, ridge)
        kept_columns = _grid_columns([kept[i] for i in local], d)
        result.columns[layer][:, kept_columns] = (fitted - trained).float()
    beta = moments.beta(fitted)
    result.error[layer] = moments.error(fitted, beta)
    result.bias[layer] = beta.float()
