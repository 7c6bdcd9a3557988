"""A run folder on disk: resolved config, best checkpoint (safetensors), resumable state.

RUN_DIR/config.yaml               the resolved config (what `hib train` actually ran)
RUN_DIR/model.safetensors         best-validation weights of what was trained (+ head fills)
RUN_DIR/train_state.safetensors   last epoch's optimizer and RNG state, for --resume
RUN_DIR/results.json              see hib.results
RUN_DIR/manifest.json             sha256 of the tensor files, checked on load (hib.rundir)
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from hib.config import Config, config_from_dict, dump_config
from hib.errors import HibError
from hib.heads import HeadStats
from hib.io import read_json, read_tensors, write_json, write_text
from hib.results import read_results
from hib.rundir import save_run_tensors, verified
from hib.tasks.base import TaskModel, make_task

CONFIG_FILE = "config.yaml"
MODEL_FILE = "model.safetensors"
PRUNING_FILE = "pruning.json"


def save_config(run_dir: Path, config: Config) -> None:
    write_text(run_dir / CONFIG_FILE, dump_config(config))


def load_run_config(run_dir: str | Path) -> Config:
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise HibError(f"{run_dir}: not a run folder (no {CONFIG_FILE}); run `hib train` first")
    try:
        tree = yaml.safe_load(path.read_text())
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise HibError(f"{path}: not valid YAML ({reason})") from None
    return config_from_dict(tree)


def trained_state(
    model: TaskModel, config: Config, with_upstream: bool = False
) -> dict[str, torch.Tensor]:
    """What a checkpoint stores: the trained head (none for a pretrained one), plus the upstream
    when fine-tuned or pruned, plus the head statistics."""
    state = {f"head.{k}": v for k, v in model.head_state().items()}
    if config.upstream.finetune or with_upstream:
        state.update({f"upstream.{k}": v for k, v in model.upstream.state_dict().items()})
    if model.head_stats is not None:
        state.update(model.head_stats.state_dict())
    return state


def save_model(run_dir: Path, model: TaskModel, config: Config) -> None:
    save_run_tensors(run_dir, MODEL_FILE, trained_state(model, config))


def save_pruned(out: Path, model: TaskModel, config: Config, spec: dict) -> None:
    """A physically pruned model that `load_run` (and so `hib eval`) loads as pruned."""
    save_config(out, config)
    save_run_tensors(out, MODEL_FILE, trained_state(model, config, with_upstream=True))
    write_json(
        out / PRUNING_FILE,
        {**spec, "kept": model.upstream.kept_heads, "head_grid": list(model.upstream.head_grid)},
    )


def _restore_pruned_shapes(model: TaskModel, run_dir: Path) -> bool:
    """Give the model the pruned layer shapes recorded in pruning.json (weights come later)."""
    path = run_dir / PRUNING_FILE
    if not path.is_file():
        return False
    spec = read_json(path)
    heads = model.heads()
    if list(heads.shape) != spec["head_grid"]:
        raise HibError(f"{path}: head grid {spec['head_grid']} does not fit the upstream")
    mask = torch.zeros(heads.shape, dtype=torch.bool)
    for layer, kept in enumerate(spec["kept"]):
        mask[layer, kept] = True
    heads.prune(mask, fill="zero")
    return True


def load_run(run_dir: str | Path, device: torch.device | None = None) -> tuple[Config, TaskModel]:
    """The run's config and its best model, in eval mode (on `device`; None: the CPU)."""
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    path = run_dir / MODEL_FILE
    if not path.is_file():
        raise HibError(f"{run_dir}: no {MODEL_FILE}; training did not finish an epoch")
    read_results(run_dir)  # a broken results.json is refused before any work, not after it
    state, _ = read_tensors(verified(run_dir, MODEL_FILE))
    model = make_task(config).build_model()
    pruned = _restore_pruned_shapes(model, run_dir)
    model.head_stats = HeadStats.from_state_dict(state)
    weights = {k: v for k, v in state.items() if not k.startswith("heads.")}
    try:
        missing, unexpected = model.load_state_dict(weights, strict=False)
    except RuntimeError as exc:  # tensors of the wrong shape
        raise HibError(f"{path}: does not fit the model ({str(exc).splitlines()[-1]})") from None
    needed = tuple(["head."] * bool(model.head_state()) + ["upstream."] * pruned)
    missing = [k for k in missing if k.startswith(needed)]
    if missing or unexpected:
        raise HibError(f"{path}: does not fit the model ({(missing + unexpected)[:3]} ...)")
    model.eval()
    return config, model if device is None else model.to(device)
