"""The numeric precision of evaluation forwards, and `auto`: bf16 only where it is faster.

bf16 autocast runs matrix products in bfloat16. CPUs with native bf16 (AMX, AVX512-BF16) run
them 2-2.6x faster than float32; every other CPU (AVX2: most AMD, older Intel, laptops)
emulates them and runs 7-9x *slower*. `auto` therefore asks the CPU first and, where it claims
native bf16, confirms with a short measurement on the upstream's own shapes, once per machine
(cached under the hib cache directory), before it picks bf16. On a GPU (`device: cuda`) the
question is only whether it has bf16 tensor cores (compute capability 8.0 on, torch's
`is_bf16_supported`): there bf16 is the fast path, so `auto` takes it without measuring.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import torch

from hib.config import PRECISIONS
from hib.device import CPU
from hib.io import WriteError, write_json
from hib.paths import cache_dir as default_cache_dir

AUTO_FILE = "precision.json"
FASTER_BELOW = 0.8
"""bf16 must take under 80 % of float32's time to be worth its rounding."""
LINEAR_SHAPE = (3200, 384, 1536)
"""(rows, in, out) of Whisper tiny.en's FFN on a 64-clip batch: where evaluation spends its time."""


def autocast(precision: str, device_type: str = "cpu") -> contextlib.AbstractContextManager:
    """The context of an evaluation forward at a resolved precision (never `auto`) on a device
    of `device_type` ("cpu", "cuda")."""
    if precision == "float32":
        return contextlib.nullcontext()
    if precision == "bfloat16":
        return torch.autocast(device_type, dtype=torch.bfloat16)
    raise ValueError(f"unknown precision '{precision}' (choose from {', '.join(PRECISIONS[1:])})")


def native_bf16() -> bool:
    """Whether this CPU has bf16 instructions (AMX tiles or AVX512-BF16), by torch's own probe."""
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, probe, lambda: False)() for probe in probes)


def bf16_time_ratio(shape: tuple[int, int, int] = LINEAR_SHAPE, repeats: int = 5) -> float:
    """Median time of one bf16-autocast Linear over its float32 time (interleaved, warmed up)."""
    rows, n_in, n_out = shape
    generator = torch.Generator().manual_seed(0)
    # tensors from a private generator: the measurement must not move the global RNG
    x = torch.randn(rows, n_in, generator=generator)
    weight, bias = (
        torch.randn(n_out, n_in, generator=generator),
        torch.randn(n_out, generator=generator),
    )
    times: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    for i in range(repeats + 1):
        for precision in times:
            start = time.perf_counter()
            with torch.no_grad(), autocast(precision):
                torch.nn.functional.linear(x, weight, bias)
            if i:  # the first round warms up both kernels
                times[precision].append(time.perf_counter() - start)
    return _median(times["bfloat16"]) / _median(times["float32"])


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def machine_key() -> str:
    """What decides the answer: CPU model and flags, torch build, thread count."""
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text() if cpuinfo.is_file() else platform.processor()
    lines = sorted({ln for ln in text.splitlines() if ln.startswith(("model name", "flags"))})
    parts = [*lines, platform.machine(), torch.__version__, str(torch.get_num_threads())]
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()[:16]


def resolve_precision(
    requested: str,
    cache_dir: str | Path | None = None,
    measure: Callable[[], float] = bf16_time_ratio,
    native: Callable[[], bool] = native_bf16,
    device: torch.device = CPU,
) -> str:
    """`float32` or `bfloat16` for a configured precision; `auto` decides for this machine's
    `device`: on a GPU by its bf16 support, on the CPU by `native` and `measure`.

    The measured ratio is stored in <cache>/precision.json per machine key, so the measurement
    runs once per machine; an unwritable cache only means measuring again next time.
    """
    if requested not in PRECISIONS:
        raise ValueError(f"unknown precision '{requested}' (choose from {', '.join(PRECISIONS)})")
    if requested != "auto":
        return requested
    if device.type == "cuda":
        # native tensor cores only: emulated bf16 (older GPUs) is slower than float32
        native_gpu = torch.cuda.is_bf16_supported(including_emulation=False)
        return "bfloat16" if native_gpu else "float32"
    if not native():
        return "float32"
    path = Path(cache_dir or default_cache_dir()) / AUTO_FILE
    key = machine_key()
    known = _read(path)
    if not isinstance(known.get(key), dict) or "bf16_time_ratio" not in known[key]:
        known[key] = {"bf16_time_ratio": float(measure())}
        with contextlib.suppress(OSError, WriteError):  # measured again next time, no harm
            write_json(path, known)
    return "bfloat16" if known[key]["bf16_time_ratio"] < FASTER_BELOW else "float32"


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
