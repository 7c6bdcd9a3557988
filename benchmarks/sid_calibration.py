"""SID calibration: a linear probe on the mean log-mel spectrum against SUPERB's SID on Whisper.

(a) Each utterance's mean log-mel spectrum (Whisper's 80-band features, no transformer),
standardised on train, into a linear classifier (logistic regression). (b) SUPERB's SID
downstream on the frozen upstream, as the SID task's head (`hib.downstream.UtteranceHead`):
a softmax-weighted sum of the layer-normed hidden states (all of them), a linear layer to 256,
mean pooling over time, a linear layer to the speakers. Layer norm works per frame and the
rest is linear up to the pooling, so the head's output is a function of the per-layer
mean-pooled states: those are computed once per utterance (at its real length) and cached,
and (b) trains on them.

Both train on train with Adam, are picked on validation (learning rate, weight decay, epoch)
and report accuracy on test, also per noise condition and engine when the corpus has
utterances.tsv and speakers.tsv. Prints one JSON object.

    python benchmarks/sid_calibration.py [--data DIR] [--threads 2] [--limit-speakers N]

Without --data it builds (once, cached) and reads the default synthesized SID corpus.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import time
from pathlib import Path

import torch
from _common import pooled_features
from torch import nn
from torch.nn import functional as F

from hib.data.corpora import sid_corpus
from hib.data.voxceleb import LIST_FILE, SIDDataset, load_voxceleb1
from hib.downstream import UtteranceHead
from hib.io import read_tensors, save_tensors
from hib.paths import cache_dir
from hib.upstream import load_upstream
from hib.upstream.whisper import LogMel

SPLITS = ("train", "validation", "test")


@torch.inference_mode()
def mean_logmel(data: SIDDataset) -> torch.Tensor:
    """(N, 80): each utterance's Whisper log-mel spectrum, averaged over its frames."""
    logmel = LogMel()
    return torch.stack([logmel(data.wave(i)[None])[0].mean(dim=1) for i in range(len(data))])


def cached_features(
    root: Path, splits: dict[str, SIDDataset], spec: str
) -> tuple[dict[str, dict[str, torch.Tensor]], float]:
    """Features of every split, from the cache when this corpus and upstream were seen before."""
    digest = hashlib.sha1(f"{root.resolve()}|{spec}".encode())
    for name in (LIST_FILE, "corpus.json"):
        if (root / name).exists():
            digest.update((root / name).read_bytes())
    for data in splits.values():
        digest.update("\n".join(data.ids).encode())
    path = cache_dir() / "features" / f"sid-{digest.hexdigest()[:16]}.safetensors"
    if path.exists():
        tensors, meta = read_tensors(path)
        return _unflatten(tensors), float(meta["seconds"])
    upstream = load_upstream(spec)
    start = time.perf_counter()
    out = {s: {"pooled": pooled_features(upstream, d)} for s, d in splits.items()}
    seconds = time.perf_counter() - start
    for name, data in splits.items():
        out[name]["mel"] = mean_logmel(data)
    flat = {f"{s}.{k}": v for s, d in out.items() for k, v in d.items()}
    save_tensors(path, flat, {"seconds": f"{seconds:.1f}", "root": str(root), "upstream": spec})
    return out, seconds


def _unflatten(tensors: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    out: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        split, name = key.split(".")
        out.setdefault(split, {})[name] = value
    return out


class LinearProbe(nn.Module):
    """(N, F) standardised features -> logits."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, n_classes: int):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.linear = nn.Linear(len(mean), n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear((x - self.mean) / self.std)


class SIDHead(nn.Module):
    """The SID task's head (`UtteranceHead`: layer weights, linear to 256, linear to the
    speakers) on pooled states (N, L, D). Both linear layers commute with mean pooling, so
    this is that head's exact output for the utterance at its real length."""

    def __init__(self, n_layers: int, hidden: int, n_classes: int):
        super().__init__()
        self.head = UtteranceHead(n_layers, hidden, n_classes)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.head.layer_weights, dim=0)
        return self.head.classifier(self.head.proj(torch.einsum("l,nld->nd", weights, pooled)))


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(-1) == y).float().mean())


def fit(make, data: dict, lrs, decays, epochs: int, batch: int) -> tuple[nn.Module, dict]:
    """Adam over a grid of (lr, weight decay); the model and epoch best on validation."""
    (xt, yt), (xv, yv) = data["train"], data["validation"]
    best: tuple[float, dict, dict] = (-1.0, {}, {})
    for lr, decay in itertools.product(lrs, decays):
        torch.manual_seed(0)
        model = make()
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=decay)
        for epoch in range(1, epochs + 1):
            for idx in torch.randperm(len(yt)).split(batch):
                optimizer.zero_grad()
                F.cross_entropy(model(xt[idx]), yt[idx]).backward()
                optimizer.step()
            score = accuracy(model, xv, yv)
            if score > best[0]:
                picked = {"lr": lr, "weight_decay": decay, "epoch": epoch}
                best = (score, {k: v.clone() for k, v in model.state_dict().items()}, picked)
    model = make()
    model.load_state_dict(best[1])
    return model, {**best[2], "validation": round(best[0], 4)}


def breakdown(root: Path, test: SIDDataset, hits: torch.Tensor) -> dict[str, float]:
    """Test accuracy per noise condition and per engine, where the corpus says which."""
    groups: dict[str, list[bool]] = {}
    rows = root / "utterances.tsv"
    if rows.exists():
        noise = {r[0]: r[3] for r in _tsv(rows)}
        for utt, hit in zip(test.ids, hits.tolist(), strict=True):
            groups.setdefault("clean" if noise[utt] == "clean" else "noisy", []).append(hit)
    speakers = root / "speakers.tsv"
    if speakers.exists():
        engine = {r[0]: r[1] for r in _tsv(speakers)}
        for speaker, hit in zip(test.speakers, hits.tolist(), strict=True):
            groups.setdefault(engine[speaker], []).append(hit)
    return {k: round(sum(v) / len(v), 4) for k, v in sorted(groups.items())}


def _tsv(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()[1:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="VoxCeleb1-layout folder (default: synthesized corpus)")
    parser.add_argument("--upstream", default="whisper-tiny.en")
    parser.add_argument("--threads", type=int, default=1, help="more only on an idle machine")
    parser.add_argument("--limit-speakers", type=int, help="only the first N speakers (sorted)")
    parser.add_argument("--epochs", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    root = Path(args.data) if args.data else sid_corpus()
    splits = {s: load_voxceleb1(root, s) for s in SPLITS}
    if args.limit_speakers:
        keep = set(splits["train"].classes[: args.limit_speakers])
        splits = {
            s: d.subset(i for i, sp in enumerate(d.speakers) if sp in keep)
            for s, d in splits.items()
        }
    feats, seconds = cached_features(root, splits, args.upstream)
    labels = {s: torch.tensor(d.labels) for s, d in splits.items()}
    n_classes = len(splits["train"].classes)
    torch.set_grad_enabled(True)
    out = {
        "data": str(root),
        "speakers": len(set(splits["train"].speakers)),
        "utterances": {s: len(d) for s, d in splits.items()},
        "audio_hours": round(sum(sum(d.durations) for d in splits.values()) / 3600, 3),
        "feature_seconds": round(seconds, 1),
    }
    mel = {s: (feats[s]["mel"], labels[s]) for s in SPLITS}
    mean, std = mel["train"][0].mean(0), mel["train"][0].std(0) + 1e-6
    pooled = {s: (feats[s]["pooled"], labels[s]) for s in SPLITS}
    layers, hidden = pooled["train"][0].shape[1:]
    runs = {
        "mean_logmel_probe": (
            lambda: LinearProbe(mean, std, n_classes),
            mel,
            (3e-3, 1e-2, 3e-2),
            (0.0, 1e-4, 1e-3),
        ),
        "whisper_sid": (
            lambda: SIDHead(layers, hidden, n_classes),
            pooled,
            (3e-3, 1e-2, 3e-2),
            (0.0, 1e-4, 1e-3),
        ),
    }
    for name, (make, data, lrs, decays) in runs.items():
        start = time.perf_counter()
        model, picked = fit(make, data, lrs, decays, args.epochs, batch=256)
        x, y = data["test"]
        with torch.no_grad():
            hits = model(x).argmax(-1) == y
        out[name] = {
            "test": round(float(hits.float().mean()), 4),
            **picked,
            "test_by": breakdown(root, splits["test"], hits),
            "train_seconds": round(time.perf_counter() - start, 1),
        }
        if isinstance(model, SIDHead):
            weights = torch.softmax(model.head.layer_weights.detach(), 0)
            out[name]["layer_weights"] = [round(float(w), 3) for w in weights]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
