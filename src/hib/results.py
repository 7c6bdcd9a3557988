"""results.json: the run's machine-readable outcome, merged field by field, written atomically."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hib.config import deep_merge
from hib.io import write_json

SCHEMA = 1
RESULTS_FILE = "results.json"


def read_results(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / RESULTS_FILE
    if not path.is_file():
        return {"schema": SCHEMA, "task": "ks"}
    return json.loads(path.read_text())


def update_results(run_dir: str | Path, fields: dict[str, Any]) -> dict[str, Any]:
    """Merge `fields` (nested dicts merge, other values replace) into results.json."""
    merged = deep_merge(read_results(run_dir), fields)
    merged["schema"] = SCHEMA
    write_json(Path(run_dir) / RESULTS_FILE, merged)
    return merged
