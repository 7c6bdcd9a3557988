"""Train a task's downstream head (optionally fine-tuning the upstream); keep the best one.

Every random draw is seeded from (config.seed, epoch), so a resumed run continues exactly as
an uninterrupted one would have. Under a launcher (hib.distributed) every process trains the
same model on its part of each batch, gradients reduced over the processes; the main process
writes the run folder.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from hib.checkpoint import CONFIG_FILE, load_run, save_config, save_model
from hib.config import Config
from hib.device import resolve_device
from hib.distributed import LOCAL, World
from hib.errors import HibError
from hib.evaluate import eval_batch_size, evaluate
from hib.frozen import ClipFeatures, one_thread
from hib.layer_cache import LayerCache
from hib.precision import resolve_precision
from hib.results import update_results
from hib.tasks.base import Batch, Splits, Task, TaskModel, make_task
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


def _optimizer(model: TaskModel, config: Config) -> torch.optim.Optimizer:
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


def train_epoch(
    model: TaskModel,
    batches: Iterable[Batch] | Iterable[tuple[torch.Tensor, Batch]],
    optimizer: torch.optim.Optimizer,
    config: Config,
    desc: str,
    progress: bool,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    world: World = LOCAL,
) -> float:
    """One pass over `batches`: Batches of clips, or (features, Batch) pairs (hib.frozen);
    with `world`, each process's parts of the batches (`World.batches`)."""
    finetune = config.upstream.finetune
    model.head.train()
    model.upstream.train(finetune)
    total, count = 0.0, 0
    bar = tqdm(batches, desc=desc, leave=False, disable=not progress)
    for item in bar:
        if isinstance(item, Batch):
            batch = item
            with torch.set_grad_enabled(finetune):
                hidden = model.upstream(batch.waves).hidden_states
            outputs = model.outputs(hidden, batch)
        else:
            features, batch = item
            outputs = model.outputs_of_features(features, batch)
        loss = model.loss_of(outputs, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        world.reduce_gradients(_parameters(optimizer), batch.part)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        total, count = total + loss.item() * batch.counted, count + batch.counted
        bar.set_postfix(loss=f"{total / max(count, 1):.3f}")
    total, count = world.sum_floats(total, count)  # every process's clips
    return total / max(count, 1)


def _parameters(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [p for group in optimizer.param_groups for p in group["params"]]


def fit_head_stats(task: Task, model: TaskModel, train_set: Dataset, world: World = LOCAL) -> None:
    """Set each head's context mean/std over training clips (augmented as in training; each
    process its part of every batch, the moments merged)."""
    model.eval()
    batches = task.stats_batches(train_set, model, world)
    clips = task.config.heads.stats_clips
    heads = model.heads()
    model.head_stats = heads.fit_stats(batches, clips, forward=model.stats_forward, world=world)


def _loaded_splits(task: Task, progress: bool) -> Splits:
    splits = task.load_splits(progress)
    if len(splits.train) == 0:
        raise HibError("the training split is empty: nothing to train on")
    return splits


def train(
    config: Config,
    run_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    world: World = LOCAL,
) -> dict:
    """Train into run_dir; returns the results written to run_dir/results.json.

    A task whose model keeps its pretrained head (ASR) has nothing to train: its run records
    the config, the head statistics and the unpruned metrics. `world`: the processes training
    together (hib.distributed); only its main process writes.
    Everything runs on the config's `device` (hib.device).
    """
    run_dir = Path(run_dir)
    device = resolve_device(config.device)  # before any work: cuda without a GPU is refused
    start = time.perf_counter()
    if config.train.num_threads:
        torch.set_num_threads(config.train.num_threads)
    seed_everything(config.seed)
    task = make_task(config)
    with world.main_first():  # a missing corpus is built once
        splits = _loaded_splits(task, progress)
    precision = resolve_precision(config.eval.precision, device=device)
    if task.trains_head:
        history, best = _train_head(
            task, splits, run_dir, resume, progress, precision, device, world
        )
    else:
        if world.is_main:
            save_config(run_dir, config)
            save_model(run_dir, task.build_model(), config)
        history, best = [], None
    world.barrier()  # the main process has written the best model
    _, best_model = load_run(run_dir, device)
    fit_head_stats(task, best_model, splits.train, world)
    if world.is_main:
        save_model(run_dir, best_model, config)
    batch_size = eval_batch_size(config, best_model)  # the sweeps' batches: the same figure
    test = evaluate(best_model, splits.test, batch_size, progress, precision)
    reference = {}
    if precision != "float32":  # what the faster precision costs, on record
        fp32 = evaluate(best_model, splits.test, batch_size)
        reference = {f"{test.metric}_float32": fp32.value}
    record: dict = {"history": history, "seconds": time.perf_counter() - start}
    if best is not None:
        record[f"val_{task.metric.name}"] = best
    fields = {
        "task": task.name,
        "metric": task.metric.to_dict(),
        "upstream": best_model.upstream.describe(),
        "data": {
            "root": str(splits.root),
            "protocol": config.data.protocol,
            "n_train": len(splits.train),
            "n_validation": len(splits.validation),
            "n_test": test.n,
        },
        test.metric: test.value,
        **test.details,
        "precision": precision,
        "precision_requested": config.eval.precision,
        "device": device.type,
        **reference,
        "train": record,
    }
    return update_results(run_dir, fields) if world.is_main else fields


def _train_head(
    task: Task,
    splits: Splits,
    run_dir: Path,
    resume: bool,
    progress: bool,
    precision: str,
    device: torch.device,
    world: World,
) -> tuple[list[dict], float]:
    """Train the task head (and the upstream when fine-tuned), keeping the best on validation;
    returns (history, best validation metric). Every process trains the same model, on its
    parts of the batches (on features: the whole batches, computed in parts)."""
    config = task.config
    metric = task.metric
    # a frozen upstream gives the validation clips the same features every epoch: computed once
    cache = LayerCache(int(config.eval.cache_gb * 2**30))
    model = task.build_model().to(device)
    optimizer = _optimizer(model, config)
    scheduler = _cosine_schedule(optimizer, config, len(splits.train))
    state = load_train_state(run_dir) if resume else None
    if resume and state is None:
        if not (run_dir / CONFIG_FILE).is_file():
            raise HibError(f"{run_dir}: nothing to resume (no {STATE_FILE})")
        if progress:  # started, but killed before its first epoch ended
            print(f"{run_dir}: no finished epoch to resume, starting from the first")
    first_epoch, best, history = 0, None, []
    if state is not None:
        model.head.load_state_dict(state["head"])
        if config.upstream.finetune:
            model.upstream.load_state_dict(state["upstream"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        first_epoch, best, history = state["epoch"] + 1, state["best"], state["history"]
        if "rng" in state:  # states converted from train_state.pt have none
            set_rng_state(state["rng"])
    if world.is_main:
        save_config(run_dir, config)
    val_key = f"val_{metric.name}"
    size = config.train.batch_size
    frozen = not config.upstream.finetune and not task.augments_training
    forward = eval_batch_size(config, model)
    if frozen and model.supports_features:  # hib.frozen: one forward per clip, not per epoch
        fitting = ClipFeatures.of(model, splits.train, forward, progress, "train features", world)
        validation = ClipFeatures.of(
            model, splits.validation, forward, progress, "val features", world
        )
    for epoch in range(first_epoch, config.train.epochs):
        desc = f"epoch {epoch + 1}/{config.train.epochs}"
        if frozen and model.supports_features:
            batches = fitting.batches(task.train_order(len(fitting), epoch), size)
            with one_thread():
                loss = train_epoch(model, batches, optimizer, config, desc, progress, scheduler)
                val = validation.evaluate(model, size)
        else:
            batches = task.train_batches(splits.train, model, epoch, world=world)
            loss = train_epoch(model, batches, optimizer, config, desc, progress, scheduler, world)
            val = evaluate(model, splits.validation, forward, progress, precision, cache=cache)
        history.append({"epoch": epoch + 1, "loss": loss, val_key: val.value})
        if progress:
            print(f"epoch {epoch + 1}: loss {loss:.4f}  val {metric.name} {val.value:.4f}")
        improved = best is None or metric.goodness(val.value) > metric.goodness(best)
        best = val.value if improved else best
        if not world.is_main:  # the main process writes the run folder
            continue
        if improved:
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
    return history, best
