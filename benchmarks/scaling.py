"""How each method's scoring cost grows with the model's heads and with the clips it scores.

Every method of the registry (hib.methods) scores seeded random encoders of three shapes: 24
heads (Whisper tiny: 4 layers x 6, width 384), 48 (Whisper base: 6 x 8, width 512) and 144
(wav2vec2 base: 12 x 12, width 768, the paper's model), each with a random 12-class task head
(KS-like) on 1 s noise clips, at two clip counts. The unit is one forward-backward pass over
the same clips (`_common.one_pass`), measured in the same run before and after each shape's
and clip count's methods: a cell's ratio is what the method costs in passes, so timing one
pass elsewhere (a GPU) predicts it there, within how differently the device speeds up the
methods' smaller forwards. On the CPU the clock is this process's CPU time (best run with one
thread: `OMP_NUM_THREADS=1`), which other jobs on a shared machine change far less than the
wall clock; on an accelerator, wall time.

Methods run their defaults except the cheap settings in `CHEAP` (recorded in the JSON). A cell
predicted to take longer than `--cap` seconds is not run but extrapolated, and marked so: from
the same method's ratio at the smaller clip count of the same shape, or, for greedy, from
ablation's ratio in the same cell times the ratio of their passes over the clips (greedy:
n(n + 1)/2 - 1 trials and n - 1 layer-input forwards; ablation: n trials and one forward).
Where a measured cell had a prediction, the JSON keeps it (`predicted_ratio`) beside the
measurement, so the extrapolation can be checked where both exist.

    nice python benchmarks/scaling.py [--clips 8 32] [--methods all] [--device cpu] [--json OUT]
    python benchmarks/scaling.py --quick    # two tiny shapes, 2 and 4 clips: a smoke test

Progress and the tables go to stderr, the JSON record to stdout (and to OUT with --json).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from _common import one_pass, timed
from torch.utils.data import TensorDataset

from hib.downstream import UtteranceClassifier
from hib.heads import HeadStats
from hib.methods import METHODS, get_method
from hib.upstream import Upstream
from hib.upstream.hf import load_hf_upstream


@dataclass(frozen=True)
class Shape:
    architecture: str  # "whisper" (log-mel, two convolutions) or "wav2vec2" (waveform CNN)
    layers: int
    heads: int  # per layer
    width: int

    @property
    def n_heads(self) -> int:
        return self.layers * self.heads


SHAPES = {
    "whisper-tiny": Shape("whisper", 4, 6, 384),
    "whisper-base": Shape("whisper", 6, 8, 512),
    "wav2vec2-base": Shape("wav2vec2", 12, 12, 768),
}
QUICK_SHAPES = {"quick-2x2": Shape("whisper", 2, 2, 32), "quick-2x4": Shape("whisper", 2, 4, 32)}
QUICK_CLIPS = (2, 4)
CHEAP: dict[str, dict] = {
    # no floor of 32 optimiser steps: the default 2 epochs, what 512 clips or more run anyway
    "hib": {"min_steps": 0},
    "hib-attn": {"min_steps": 0},
    "l0": {"min_steps": 0},
    "attattr": {"steps": 5},  # of 20: the cost is about proportional to the steps
    # one removal order (of 20), never truncated: the forwards of one order, an upper bound
    "shapley": {"permutations": 1, "tolerance": 0.0},
}
"""Each method's options besides clips and batch size; the others run their defaults."""
N_CLASSES = 12
CLIP_SAMPLES = 16000  # 1 s at 16 kHz


def random_upstream(name: str, shape: Shape) -> Upstream:
    """A seeded random encoder of `shape`, saved and loaded back the way a real checkpoint is
    (hib.upstream.hf: dropout, LayerDrop and SpecAugment off, per-head attention)."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model, WhisperConfig, WhisperModel
    from transformers.utils import logging

    logging.disable_progress_bar()
    torch.manual_seed(0)
    ffn = 4 * shape.width
    if shape.architecture == "whisper":
        config = WhisperConfig(
            d_model=shape.width,
            encoder_layers=shape.layers,
            encoder_attention_heads=shape.heads,
            encoder_ffn_dim=ffn,
            decoder_layers=1,  # unused: the upstream is the encoder
            decoder_attention_heads=shape.heads,
            decoder_ffn_dim=ffn,
            vocab_size=64,
            max_target_positions=16,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
            decoder_start_token_id=1,
        )
        model = WhisperModel(config)
    else:
        config = Wav2Vec2Config(
            hidden_size=shape.width,
            num_hidden_layers=shape.layers,
            num_attention_heads=shape.heads,
            intermediate_size=ffn,
        )
        model = Wav2Vec2Model(config)
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        return load_hf_upstream(folder, name=name)


def classifier(
    name: str, shape: Shape, waves: torch.Tensor, device: torch.device
) -> UtteranceClassifier:
    """The random encoder with a random task head and head statistics (for mean fill), on
    `device`; the statistics come from `waves`, before the move (not part of any timing)."""
    model = UtteranceClassifier.build(random_upstream(name, shape), N_CLASSES).eval()
    stats = model.heads().fit_stats(iter(waves.split(32)), max_clips=len(waves))
    model.head_stats = HeadStats(stats.mean.to(device), stats.std.to(device), stats.n_clips)
    return model.to(device)


def clock_for(device: torch.device) -> Callable[[], float]:
    """Process CPU seconds on the CPU; wall seconds on an accelerator, where the CPU waits."""
    return time.process_time if device.type == "cpu" else time.perf_counter


def greedy_over_ablation(n: int) -> float:
    """Greedy's passes over the clips over ablation's, for n heads (hib.methods.greedy)."""
    return (n * (n + 1) / 2 - 1 + n - 1) / (n + 1)


def predict(
    method: str, clips: int, done: dict[int, dict], cell: dict, n_heads: int
) -> tuple[float, str, float | None] | None:
    """(ratio, basis, factor) of a cell from cells already measured or predicted: the method's
    own ratio at the largest smaller clip count, else (greedy) `factor` x ablation's ratio in
    this cell; None when neither is there."""
    smaller = [c for c in done if c < clips and "ratio" in done[c]["methods"].get(method, {})]
    if smaller:
        return (
            done[max(smaller)]["methods"][method]["ratio"],
            f"ratio at {max(smaller)} clips",
            None,
        )
    if method == "greedy" and "ratio" in cell.get("ablation", {}):
        factor = greedy_over_ablation(n_heads)
        return cell["ablation"]["ratio"] * factor, f"ablation's ratio x {factor:.1f}", factor
    return None


def measure_cell(
    model: UtteranceClassifier,
    data: TensorDataset,
    methods: list[str],
    batch: int,
    cap: float,
    done: dict[int, dict],
) -> dict:
    """One shape at one clip count: the pass before and after, every method in between."""
    clips = len(data)
    device = data.tensors[0].device
    clock = clock_for(device)
    n_heads = int(model.heads().alive().sum())
    before = one_pass(model, data, batch, clock)
    cell: dict[str, dict] = {}
    for name in methods:
        prediction = predict(name, clips, done, cell, n_heads)
        if prediction is not None and prediction[0] * before > cap:
            ratio, basis, factor = prediction
            cell[name] = {"ratio": ratio, "measured": False, "basis": basis}
            if factor is not None:
                cell[name]["of_ablation"] = factor
            print(f"  {name}: {ratio * before:.1f} s extrapolated ({basis})", file=sys.stderr)
            continue
        method = get_method(name, clips=clips, batch_size=batch, **CHEAP.get(name, {}))
        try:
            seconds, _ = timed(lambda m=method: m.score(model, data), device, clock)
        except RuntimeError as exc:  # a method not yet ready for this device, say
            cell[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
            print(f"  {name}: {cell[name]['error']}", file=sys.stderr)
            continue
        # the ratio to the pass before, for predictions within this cell; final one below
        cell[name] = {"seconds": seconds, "ratio": seconds / before, "measured": True}
        cell[name]["options"] = method.options()
        if prediction is not None:
            cell[name]["predicted_ratio"] = prediction[0]
        print(f"  {name}: {seconds:.2f} s", file=sys.stderr)
    after = one_pass(model, data, batch, clock)
    pass_s = (before + after) / 2
    for entry in cell.values():
        if entry.get("measured"):
            entry["ratio"] = entry["seconds"] / pass_s
    for entry in cell.values():
        if "of_ablation" in entry:
            entry["ratio"] = cell["ablation"]["ratio"] * entry["of_ablation"]
        if entry.get("measured") is False:
            entry["seconds"] = entry["ratio"] * pass_s
    return {"pass_s": pass_s, "pass_before_s": before, "pass_after_s": after, "methods": cell}


def measure_shape(
    name: str,
    shape: Shape,
    clip_counts: list[int],
    methods: list[str],
    device: torch.device,
    batch: int,
    cap: float,
) -> dict:
    generator = torch.Generator().manual_seed(0)
    waves = 0.1 * torch.randn(max(clip_counts), CLIP_SAMPLES, generator=generator)
    labels = torch.randint(0, N_CLASSES, (len(waves),), generator=generator)
    model = classifier(name, shape, waves, device)
    data = TensorDataset(waves.to(device), labels.to(device))
    one_pass(model, TensorDataset(*(t[:batch] for t in data.tensors)), batch)  # warm-up
    cells: dict[int, dict] = {}
    for clips in clip_counts:
        print(f"{name} ({shape.n_heads} heads), {clips} clips", file=sys.stderr)
        subset = TensorDataset(*(t[:clips] for t in data.tensors))
        cells[clips] = measure_cell(model, subset, methods, batch, cap, cells)
        print(f"  pass: {cells[clips]['pass_s']:.2f} s", file=sys.stderr)
    return {**asdict(shape), "n_heads": shape.n_heads, "cells": cells}


def log_slope(points: list[tuple[float, float]]) -> float | None:
    """The exponent b of y ~ x^b fitted by least squares on logs (None below two x values)."""
    if len({x for x, _ in points}) < 2:
        return None
    xs, ys = zip(*((math.log(x), math.log(y)) for x, y in points), strict=True)
    return statistics.linear_regression(xs, ys).slope


def growth(shapes: dict[str, dict], methods: list[str], clip_counts: list[int]) -> dict:
    """Per method: ratio ~ heads^b per clip count (all cells; measured cells only), and
    seconds ~ clips^c per shape (measured cells only); "pass" for the pass itself."""

    def entry(shape: dict, clips: int, method: str) -> dict:
        cell = shape["cells"][clips]
        if method == "pass":
            return {"ratio": 1.0, "seconds": cell["pass_s"], "measured": True}
        return cell["methods"].get(method, {})

    out = {}
    for method in ["pass", *methods]:
        over_heads, over_heads_measured, over_clips = {}, {}, {}
        for clips in clip_counts:
            rows = [(s["n_heads"], entry(s, clips, method)) for s in shapes.values()]
            rows = [(n, e) for n, e in rows if "ratio" in e]
            key = "seconds" if method == "pass" else "ratio"
            over_heads[clips] = log_slope([(n, e[key]) for n, e in rows])
            over_heads_measured[clips] = log_slope([(n, e[key]) for n, e in rows if e["measured"]])
        for name, shape in shapes.items():
            rows = [(c, entry(shape, c, method)) for c in clip_counts]
            over_clips[name] = log_slope([(c, e["seconds"]) for c, e in rows if e.get("measured")])
        out[method] = {
            "heads_exponent": over_heads,
            "heads_exponent_measured": over_heads_measured,
            "clips_exponent": over_clips,
        }
    return out


def table(shapes: dict[str, dict], methods: list[str], clip_counts: list[int]) -> str:
    """Markdown: seconds and ratio to the pass per method and cell (~ = extrapolated)."""
    columns = [(name, clips) for name in shapes for clips in clip_counts]
    header = [f"{name} ({shapes[name]['n_heads']} heads), {clips} clips" for name, clips in columns]
    lines = ["| method | " + " | ".join(header) + " |", "| --- |" + " --- |" * len(columns)]
    passes = [f"{shapes[n]['cells'][c]['pass_s']:.3g} s" for n, c in columns]
    lines.append("| forward-backward pass | " + " | ".join(passes) + " |")
    for method in methods:
        row = []
        for name, clips in columns:
            e = shapes[name]["cells"][clips]["methods"][method]
            mark = "" if e.get("measured", True) else "~"
            row.append(e.get("error", f"{mark}{e['seconds']:.3g} s ({mark}{e['ratio']:.3g}x)"))
        lines.append(f"| {method} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def exponents_table(record: dict, clip_counts: list[int]) -> str:
    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    shapes = list(record["shapes"])
    head = [f"ratio ~ heads^b, {c} clips (measured only)" for c in clip_counts]
    head += [f"seconds ~ clips^c, {name}" for name in shapes]
    lines = ["| method | " + " | ".join(head) + " |", "| --- |" + " --- |" * len(head)]
    for method, g in record["growth"].items():
        row = [
            f"{fmt(g['heads_exponent'][c])} ({fmt(g['heads_exponent_measured'][c])})"
            for c in clip_counts
        ]
        row += [fmt(g["clips_exponent"][name]) for name in shapes]
        lines.append(f"| {method} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def parse_methods(text: str) -> list[str]:
    """ "all" or a comma list, in registry order; greedy brings ablation (its extrapolation)."""
    wanted = set(METHODS) if text == "all" else {m.strip() for m in text.split(",")}
    unknown = sorted(wanted - set(METHODS))
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown method(s) {', '.join(unknown)}")
    if "greedy" in wanted:
        wanted.add("ablation")
    return [m for m in METHODS if m in wanted]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, nargs="+", help="clip counts (default 8 32)")
    parser.add_argument("--methods", type=parse_methods, default="all", help="all, or a,b,...")
    parser.add_argument("--shapes", help=f"comma list of {', '.join(SHAPES)} (default: all)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1 ...")
    parser.add_argument("--batch", type=int, default=32, help="every method's and the pass's")
    parser.add_argument(
        "--cap", type=float, default=300.0, help="seconds; a cell predicted longer is extrapolated"
    )
    parser.add_argument("--json", type=Path, help="also write the record here")
    parser.add_argument("--quick", action="store_true", help="tiny shapes and clip counts")
    args = parser.parse_args()
    methods = args.methods
    shapes = QUICK_SHAPES if args.quick else SHAPES
    if args.shapes:
        unknown = sorted(set(args.shapes.split(",")) - set(shapes))
        if unknown:
            parser.error(f"unknown shape(s) {', '.join(unknown)}; known: {', '.join(shapes)}")
        shapes = {k: v for k, v in shapes.items() if k in args.shapes.split(",")}
    clip_counts = sorted(args.clips or (QUICK_CLIPS if args.quick else (8, 32)))
    device = torch.device(args.device)
    start = time.perf_counter()
    measured = {
        name: measure_shape(name, shape, clip_counts, methods, device, args.batch, args.cap)
        for name, shape in shapes.items()
    }
    record = {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "clock": "wall" if clock_for(device) is time.perf_counter else "process CPU time",
        "torch": torch.__version__,
        "clip_s": CLIP_SAMPLES / 16000,
        "batch": args.batch,
        "cap_s": args.cap,
        "cheap_settings": {m: CHEAP.get(m, {}) for m in methods},
        "shapes": measured,
        "growth": growth(measured, methods, clip_counts),
        "wall_s": time.perf_counter() - start,
    }
    print(table(measured, methods, clip_counts), file=sys.stderr)
    print(exponents_table(record, clip_counts), file=sys.stderr)
    text = json.dumps(record, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
