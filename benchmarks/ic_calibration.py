"""Calibrate the synthesized IC corpus: SUPERB's IC downstream on a frozen upstream.

Downstream: softmax-weighted sum of the layer-normed hidden states (all of them), mean pooling
over time, one linear classifier per slot; accuracy = all three slots right. Pooling and the
weighted sum are both linear, so the weighted sum of per-layer pooled features is the same
model: those are computed once per utterance, at its real length (no padding: the upstream
slices its positional table), and the heads train on them with Adam. Learning rate and epoch
are chosen on validation accuracy; test accuracy is reported for that choice only.

    nice python benchmarks/ic_calibration.py [--corpus DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import pooled_features
from torch import nn

from hib.data.fsc import SLOTS, VOCABULARY, ICDataset, load_fsc
from hib.upstream import load_upstream

SPLITS = ("train", "validation", "test")


class SlotHeads(nn.Module):
    """Learnable layer weights and one linear classifier per slot, on pooled features."""

    def __init__(self, n_states: int, dim: int):
        super().__init__()
        self.layer_weights = nn.Parameter(torch.zeros(n_states))
        self.heads = nn.ModuleList(nn.Linear(dim, len(VOCABULARY[s])) for s in SLOTS)

    def forward(self, features: torch.Tensor) -> list[torch.Tensor]:
        x = torch.einsum("l,nld->nd", torch.softmax(self.layer_weights, 0), features)
        return [head(x) for head in self.heads]


def predict(model: SlotHeads, features: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.stack([logits.argmax(-1) for logits in model(features)], dim=1)


def train(
    feats: dict[str, torch.Tensor],
    labels: dict[str, torch.Tensor],
    lr: float,
    epochs: int,
    seed: int,
    batch: int = 32,
) -> tuple[float, int, SlotHeads]:
    """(best validation accuracy, its epoch, the model at that epoch)."""
    torch.manual_seed(seed)
    model = SlotHeads(feats["train"].shape[1], feats["train"].shape[2])
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    best = (-1.0, 0, {k: v.clone() for k, v in model.state_dict().items()})
    for epoch in range(1, epochs + 1):
        for idx in torch.randperm(len(feats["train"])).split(batch):
            outputs = model(feats["train"][idx])
            loss = sum(F.cross_entropy(o, labels["train"][idx, k]) for k, o in enumerate(outputs))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        acc = accuracy(predict(model, feats["validation"]), labels["validation"])
        if acc > best[0]:
            best = (acc, epoch, {k: v.clone() for k, v in model.state_dict().items()})
    model.load_state_dict(best[2])
    return best[0], best[1], model


def accuracy(predicted: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of utterances with all three slots right."""
    return (predicted == labels).all(dim=1).float().mean().item() if len(labels) else float("nan")


def _table(path: Path, key: str) -> dict[str, dict[str, str]]:
    with open(path, newline="") as f:
        return {row[key]: row for row in csv.DictReader(f, delimiter="\t")}


def breakdown(corpus: Path, data: ICDataset, predicted: torch.Tensor) -> dict:
    """Accuracy per slot, clean vs noisy and per engine (where the corpus says so)."""
    out = {
        f"{slot}_accuracy": (predicted[:, k] == data.labels[:, k]).float().mean().item()
        for k, slot in enumerate(SLOTS)
    }
    groups: dict[str, list[int]] = {}
    if (corpus / "degradations.tsv").exists() and (corpus / "speakers.tsv").exists():
        noise = _table(corpus / "degradations.tsv", "path")
        engine = _table(corpus / "speakers.tsv", "speaker")
        for i, (utt, spk) in enumerate(zip(data.ids, data.speakers, strict=True)):
            kind = noise.get(utt, {}).get("noise", "clean")
            for name in ("clean" if kind == "clean" else "noisy", engine[spk]["engine"]):
                groups.setdefault(name, []).append(i)
    for name, idx in sorted(groups.items()):
        out[f"{name}_accuracy"] = accuracy(predicted[idx], data.labels[idx])
        out[f"{name}_n"] = len(idx)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", help="an FSC-layout folder (default: the synthesized one)")
    parser.add_argument("--upstream", default="whisper-tiny.en")
    parser.add_argument("--lrs", default="1e-3,3e-3,1e-2")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--train-utterances", type=int, help="only the first N training rows (fewer speakers)"
    )
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.corpus:
        corpus = Path(args.corpus)
    else:
        from hib.data.corpora import ic_corpus

        corpus = ic_corpus()
    upstream = load_upstream(args.upstream)
    data = {s: load_fsc(corpus, s) for s in SPLITS}
    if args.train_utterances:
        data["train"] = data["train"].subset(range(min(args.train_utterances, len(data["train"]))))
    start, cpu = time.perf_counter(), time.process_time()
    feats = {s: pooled_features(upstream, d) for s, d in data.items()}
    extraction, cpu = time.perf_counter() - start, time.process_time() - cpu
    labels = {s: d.labels for s, d in data.items()}
    runs = []
    for lr in map(float, args.lrs.split(",")):
        for seed in range(args.seeds):
            val, epoch, model = train(feats, labels, lr, args.epochs, seed)
            test = accuracy(predict(model, feats["test"]), labels["test"])
            runs.append({"lr": lr, "seed": seed, "epoch": epoch, "validation": val, "test": test})
            print(json.dumps(runs[-1]))
    by_lr = {lr: [r for r in runs if r["lr"] == lr] for lr in {r["lr"] for r in runs}}
    lr = max(by_lr, key=lambda k: sum(r["validation"] for r in by_lr[k]))
    chosen = by_lr[lr]
    best = max(chosen, key=lambda r: r["validation"])
    _, _, model = train(feats, labels, lr, best["epoch"], best["seed"])
    weights = torch.softmax(model.layer_weights.detach(), 0)
    result = {
        "corpus": str(corpus),
        "upstream": args.upstream,
        "utterances": {s: len(d) for s, d in data.items()},
        "train_speakers": len(set(data["train"].speakers)),
        "feature_seconds": round(extraction, 1),
        "feature_cpu_seconds": round(cpu, 1),
        "audio_hours": round(sum(sum(d.durations) for d in data.values()) / 3600, 3),
        "chosen_lr": lr,
        "validation_accuracy_mean": sum(r["validation"] for r in chosen) / len(chosen),
        "test_accuracy_mean": sum(r["test"] for r in chosen) / len(chosen),
        "test_accuracy_per_seed": [r["test"] for r in chosen],
        "layer_weights": [round(w, 3) for w in weights.tolist()],
        "validation": breakdown(corpus, data["validation"], predict(model, feats["validation"])),
        "test": breakdown(corpus, data["test"], predict(model, feats["test"])),
        "runs": runs,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
