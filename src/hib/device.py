"""Where a command computes: the config's `device` (auto | cpu | cuda), resolved when it starts.

`auto` is cuda when torch sees a GPU, else cpu, so one config means the same on a laptop and a
GPU machine. `cuda` where there is none is a one-line error at the start of the command, not a
silent CPU run. Models move to the device once; batches move where they are made
(`TaskModel.batches`, `Task.train_batches`); scores, head statistics and everything written to
disk stay on the CPU.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from hib.config import DEVICES
from hib.errors import ConfigError

CPU = torch.device("cpu")


def resolve_device(requested: str) -> torch.device:
    """The torch device for a configured `device`; ConfigError for an unknown or absent one."""
    if requested not in DEVICES:
        raise ConfigError(f"config key 'device': {requested!r} is not one of {', '.join(DEVICES)}")
    if requested == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else CPU
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"config key 'device': cuda, but torch {torch.__version__} sees no CUDA GPU here "
            "(use device=auto or device=cpu)"
        )
    return torch.device(requested)


def module_device(module: nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (cpu for a module without either)."""
    for tensor in itertools.chain(module.parameters(), module.buffers()):
        return tensor.device
    return CPU


def pinned(device: torch.device) -> bool:
    """Whether batches bound for `device` should be collated into pinned host memory: a
    pinned batch copies to a GPU asynchronously, on a CPU there is nothing to copy."""
    return device.type == "cuda"
