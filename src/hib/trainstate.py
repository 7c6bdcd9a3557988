"""The resumable training state as data: tensors in safetensors, everything else as JSON.

RUN_DIR/train_state.safetensors holds every tensor of the state (head, optimizer moments,
RNG state) and, in its metadata, the rest as JSON (epoch, history, scheduler, param groups)
with each tensor's place. Loading parses a header and JSON, so it never runs code; run
folders from before this format hold `train_state.pt`, a pickle, which is not loaded unless
the user converts it knowingly (`hib convert-state`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from hib.errors import HibError
from hib.io import read_tensors, tensors_writer
from hib.rundir import save_run_file, verified

STATE_FILE = "train_state.safetensors"
LEGACY_STATE_FILE = "train_state.pt"
_TENSOR, _TUPLE, _ITEMS = "__tensor__", "__tuple__", "__items__"


def pack(state: Any) -> tuple[dict[str, torch.Tensor], str]:
    """(tensors by path, JSON of the rest): tuples and non-string dict keys survive."""
    tensors: dict[str, torch.Tensor] = {}

    def encode(obj: Any, key: str) -> Any:
        if isinstance(obj, torch.Tensor):
            tensors[key] = obj
            return {_TENSOR: key}
        if isinstance(obj, tuple):
            return {_TUPLE: [encode(v, f"{key}/{i}") for i, v in enumerate(obj)]}
        if isinstance(obj, list):
            return [encode(v, f"{key}/{i}") for i, v in enumerate(obj)]
        if isinstance(obj, dict):
            if all(isinstance(k, str) and k not in (_TENSOR, _TUPLE, _ITEMS) for k in obj):
                return {k: encode(v, f"{key}/{k}") for k, v in obj.items()}
            return {_ITEMS: [[k, encode(v, f"{key}/{k}")] for k, v in obj.items()]}
        if obj is None or isinstance(obj, bool | int | float | str):
            return obj
        raise TypeError(f"training state at {key!r}: cannot store a {type(obj).__name__}")

    tree = encode(state, "")
    return tensors, json.dumps(tree)


def unpack(tensors: dict[str, torch.Tensor], text: str) -> Any:
    def decode(obj: Any) -> Any:
        if isinstance(obj, list):
            return [decode(v) for v in obj]
        if not isinstance(obj, dict):
            return obj
        if _TENSOR in obj:
            return tensors[obj[_TENSOR]]
        if _TUPLE in obj:
            return tuple(decode(v) for v in obj[_TUPLE])
        if _ITEMS in obj:
            return {k: decode(v) for k, v in obj[_ITEMS]}
        return {k: decode(v) for k, v in obj.items()}

    return decode(json.loads(text))


def save_train_state(run_dir: Path, state: dict) -> None:
    tensors, text = pack(state)
    save_run_file(run_dir, STATE_FILE, tensors_writer(tensors, {"state": text}))


def load_train_state(run_dir: Path) -> dict | None:
    """The last epoch's state, or None; an old pickled state is refused, never unpickled."""
    path = run_dir / STATE_FILE
    if not path.is_file():
        legacy = run_dir / LEGACY_STATE_FILE
        if legacy.is_file():
            raise HibError(
                f"{legacy}: a pickle from an older hib, not loaded (unpickling can run code); "
                f"re-train, or if you trust where it came from: hib convert-state {run_dir}"
            )
        return None
    tensors, metadata = read_tensors(verified(run_dir, STATE_FILE))
    try:
        return unpack(tensors, metadata["state"])
    except (KeyError, TypeError, ValueError):
        raise HibError(f"{path}: not a hib training state") from None


def convert_legacy_state(run_dir: Path) -> Path:
    """train_state.pt -> train_state.safetensors, through torch's restricted unpickler.

    `weights_only=True` admits only tensors and plain containers: a pickle that would build
    anything else (and so could run code) is refused, not executed.
    """
    legacy = run_dir / LEGACY_STATE_FILE
    if not legacy.is_file():
        raise HibError(f"{run_dir}: no {LEGACY_STATE_FILE} to convert")
    try:
        state = torch.load(legacy, map_location="cpu", weights_only=True)
    except Exception as exc:  # the unpickler's refusals come as several types
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise HibError(f"{legacy}: refused, it holds more than tensors ({reason})") from None
    if not isinstance(state, dict) or "epoch" not in state:
        raise HibError(f"{legacy}: not a hib training state")
    save_train_state(run_dir, state)
    return run_dir / STATE_FILE
