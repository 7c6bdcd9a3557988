"""Train the KS downstream (and optionally fine-tune the upstream); keep the best on validation.

Every random draw is seeded from (config.seed, epoch), so a resumed run continues exactly as
an uninterrupted one would have.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from hib.checkpoint import CONFIG_FILE, build_model, load_run, save_config, save_model
from hib.config import Config
from hib.data.augment import Augment
from hib.data.corpora import resolve_data_root
from hib.data.speech_commands import KSDataset, background_noises, balanced_sampler, load_split
from hib.downstream import KSModel
from hib.errors import HibError
from hib.evaluate import evaluate
from hib.layer_cache import LayerCache
from hib.precision import resolve_precision
from hib.results import update_results
from hib.trainstate import STATE_FILE, load_train_state, save_train_state


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """The global RNGs (python, numpy, torch), as tensors and plain values."""
    name, key, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [name, key.tolist(), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    name, key, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.array(key, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])


def limit(dataset: KSDataset, n: int | None, seed: int) -> KSDataset:
    """A seeded random subset of n clips (all when n is None or larger)."""
    if n is None or n >= len(dataset):
        return dataset
    order = np.random.default_rng(seed).permutation(len(dataset))[:n]
    return dataset.subset(sorted(order.tolist()))


def load_splits(config: Config, progress: bool = True) -> dict[str, KSDataset]:
    data = config.data
    root = resolve_data_root(data, progress)
    test_root = Path(data.test_root) if data.test_root else None
    splits = {
        s: load_split(root, s, data.protocol, test_root=test_root)
        for s in ("train", "validation", "test")
    }
    splits["train"] = limit(splits["train"], data.train_limit, config.seed)
    splits["validation"] = limit(splits["validation"], data.eval_limit, config.seed + 1)
    splits["root"] = root  # type: ignore[assignment]
    return splits


def training_noises(root: Path, config: Config) -> list:
    """Background noises for training-time augmentation (none when it is off)."""
    return background_noises(root) if config.data.augment else []


def _optimizer(model: KSModel, config: Config) -> torch.optim.Optimizer:
    groups = [{"params": model.head.parameters(), "lr": config.train.lr}]
    if config.upstream.finetune:
        groups.append({"params": model.upstream.parameters(), "lr": config.train.upstream_lr})
    return torch.optim.AdamW(groups, weight_decay=config.train.weight_decay)


def _cosine_schedule(optimizer: torch.optim.Optimizer, config: Config, n_train: int):
    """Learning rate decays from its configured value to 0 along a half cosine."""
    per_epoch = config.train.steps_per_epoch or math.ceil(n_train / config.train.batch_size)
    total = max(per_epoch * config.train.epochs, 1)
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    )


def epoch_loader(train_set: KSDataset, noises: list, config: Config, epoch: int) -> DataLoader:
    seed = config.seed * 1000 + epoch
    dataset = train_set
    if config.data.augment and noises:
        dataset = train_set.with_transform(Augment(noises, snr_db=config.data.snr_db, seed=seed))
    n = config.train.steps_per_epoch
    num_samples = n * config.train.batch_size if n else len(train_set)
    sampler = balanced_sampler(train_set, num_samples=num_samples, seed=seed)
    return DataLoader(dataset, batch_size=config.train.batch_size, sampler=sampler)


def train_epoch(
    model: KSModel,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    config: Config,
    desc: str,
    progress: bool,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> float:
    finetune = config.upstream.finetune
    model.head.train()
    model.upstream.train(finetune)
    total, count = 0.0, 0
    bar = tqdm(loader, desc=desc, leave=False, disable=not progress)
    for waves, labels in bar:
        with torch.set_grad_enabled(finetune):
            hidden = model.upstream(waves).hidden_states
        loss = F.cross_entropy(model.head(hidden), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total, count = total + loss.item() * len(labels), count + len(labels)
        bar.set_postfix(loss=f"{total / count:.3f}")
    return total / max(count, 1)


def fit_head_stats(model: KSModel, train_set: KSDataset, noises: list, config: Config) -> None:
    """Set each head's context mean/std over training clips (augmented as in training)."""
    loader = epoch_loader(train_set, noises, config, epoch=-1)
    model.eval()
    batches = (waves for waves, _ in loader)
    model.head_stats = model.heads().fit_stats(batches, config.heads.stats_clips)


def train(config: Config, run_dir: str | Path, resume: bool = False, progress: bool = True) -> dict:
    """Train into run_dir; returns the results written to run_dir/results.json."""
    run_dir = Path(run_dir)
    start = time.perf_counter()
    if config.train.num_threads:
        torch.set_num_threads(config.train.num_threads)
    seed_everything(config.seed)
    splits = load_splits(config, progress)
    if len(splits["train"]) == 0:
        raise HibError("the training split is empty: nothing to train on")
    noises = training_noises(splits["root"], config)
    precision = resolve_precision(config.eval.precision)
    # a frozen upstream gives the validation clips the same features every epoch: computed once
    cache = LayerCache(int(config.eval.cache_gb * 2**30))
    model = build_model(config)
    optimizer = _optimizer(model, config)
    scheduler = _cosine_schedule(optimizer, config, len(splits["train"]))
    state = load_train_state(run_dir) if resume else None
    if resume and state is None:
        if not (run_dir / CONFIG_FILE).is_file():
            raise HibError(f"{run_dir}: nothing to resume (no {STATE_FILE})")
        if progress:  # started, but killed before its first epoch ended
            print(f"{run_dir}: no finished epoch to resume, starting from the first")
    first_epoch, best, history = 0, -1.0, []
    if state is not None:
        model.head.load_state_dict(state["head"])
        if config.upstream.finetune:
            model.upstream.load_state_dict(state["upstream"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        first_epoch, best, history = state["epoch"] + 1, state["best"], state["history"]
        if "rng" in state:  # states converted from train_state.pt have none
            set_rng_state(state["rng"])
    save_config(run_dir, config)
    for epoch in range(first_epoch, config.train.epochs):
        loader = epoch_loader(splits["train"], noises, config, epoch)
        desc = f"epoch {epoch + 1}/{config.train.epochs}"
        loss = train_epoch(model, loader, optimizer, config, desc, progress, scheduler)
        val = evaluate(
            model, splits["validation"], config.train.batch_size, progress, precision, cache=cache
        )
        history.append({"epoch": epoch + 1, "loss": loss, "val_accuracy": val.accuracy})
        if progress:
            print(f"epoch {epoch + 1}: loss {loss:.4f}  val acc {val.accuracy:.4f}")
        if val.accuracy > best:
            best = val.accuracy
            save_model(run_dir, model, config)
        save_train_state(
            run_dir,
            {
                "epoch": epoch,
                "best": best,
                "history": history,
                "head": model.head.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "rng": rng_state(),
                **({"upstream": model.upstream.state_dict()} if config.upstream.finetune else {}),
            },
        )
    _, best_model = load_run(run_dir)
    fit_head_stats(best_model, splits["train"], noises, config)
    save_model(run_dir, best_model, config)
    test = evaluate(best_model, splits["test"], config.train.batch_size, progress, precision)
    reference = {}
    if precision != "float32":  # what the faster precision costs, on record
        fp32 = evaluate(best_model, splits["test"], config.train.batch_size)
        reference = {"accuracy_float32": fp32.accuracy}
    return update_results(
        run_dir,
        {
            "task": "ks",
            "upstream": best_model.upstream.describe(),
            "data": {
                "root": str(splits["root"]),
                "protocol": config.data.protocol,
                "n_train": len(splits["train"]),
                "n_validation": len(splits["validation"]),
                "n_test": test.n,
            },
            "accuracy": test.accuracy,
            "precision": precision,
            "precision_requested": config.eval.precision,
            **reference,
            "per_class": test.per_class,
            "train": {
                "val_accuracy": best,
                "history": history,
                "seconds": time.perf_counter() - start,
            },
        },
    )
