"""results.json: the run's machine-readable outcome, merged field by field, written atomically.

The read-merge-write holds the run folder's lock, so commands running at once on one folder
all keep their fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hib.config import deep_merge
from hib.errors import HibError
from hib.io import read_json, write_json
from hib.rundir import run_lock

SCHEMA = 1
RESULTS_FILE = "results.json"


def read_results(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / RESULTS_FILE
    if not path.is_file():
        return {"schema": SCHEMA, "task": "ks"}
    results = read_json(path)
    if not isinstance(results, dict):
        raise HibError(f"{path}: not a results object; restore or delete it")
    return results


def update_results(
    run_dir: str | Path, fields: dict[str, Any], replace: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Merge `fields` (nested dicts merge, other values replace) into results.json; the
    top-level keys named in `replace` are replaced whole (a record recomputed from scratch,
    which must not keep the old one's entries)."""
    with run_lock(run_dir):
        kept = {k: v for k, v in read_results(run_dir).items() if k not in replace}
        merged = deep_merge(kept, fields)
        merged["schema"] = SCHEMA
        write_json(Path(run_dir) / RESULTS_FILE, merged)
    return merged
