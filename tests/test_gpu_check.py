"""benchmarks/gpu_check.sh --dry-run, which works without a GPU: every path it uses checked, the
GPU tests' selection listed, its JSON written; and without --dry-run it refuses a CPU machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OUT": str(tmp_path / "out"), "PYTHON": sys.executable}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_dry_run_lists_the_gpu_tests_and_writes_its_json(tmp_path: Path):
    done = _run(tmp_path, "--dry-run")
    assert done.returncode == 0, done.stderr
    record = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert record["dry_run"] and record["torch"] == torch.__version__
    selection = record["pytest"]["selection"]
    assert selection and all(name.startswith("tests/test_gpu.py::") for name in selection)
    assert record["pytest"]["rc"] is None and "-m gpu" in record["pytest"]["command"]
    scaling = record["scaling"]
    assert scaling["rc"] is None and "--device cuda --json" in scaling["command"]
    found = (ROOT / "benchmarks" / "scaling.py").is_file()
    assert scaling["status"] == ("checked" if found else "skipped: benchmarks/scaling.py not found")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: the check would run")
def test_without_a_gpu_the_real_check_is_one_line(tmp_path: Path):
    done = _run(tmp_path)
    assert done.returncode == 2 and done.stderr.startswith("error: torch sees no CUDA GPU")
    assert done.stderr.count("\n") == 1
