"""One pruning for several tasks: a keep-mask per pruned fraction that serves every task.

Each task's scores for a method are rank-normalised to [0, 1] (`rank_normalise`: capacities
in bits, accuracy drops and loss rises meet on one scale, and no task outweighs the others by
its units), then combined head by head across the tasks:

- "max" (default): a head is as important as the task that needs it most, so it is kept if
  any task ranks it high; every task's own most needed heads are the last to go;
- "mean": the heads that matter on average; a head only one task needs can go early.

Ties of the combination (frequent for the max of ranks) are broken by the other statistic
(the mean for "max", the max for "mean"), then by position, as `prune_mask` does.

`joint_prune` measures each task's metric on its test split with the joint mask and with the
task's own mask at the same fraction, and their "kept share": joint retention / own retention
(`hib.cross_task.stats.retention`), 1 = the joint mask costs the task nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hib.cross_task import load_runs, method_scores
from hib.cross_task.report import write_cross_report
from hib.cross_task.stats import rank_normalise, retention
from hib.errors import ConfigError, HibError
from hib.pipeline import Run
from hib.prune import check_ratio, n_to_prune, prune_mask
from hib.results import RESULTS_FILE, update_results

COMBINES = ("max", "mean")
DEFAULT_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)


def combine_scores(scores: Sequence[np.ndarray], combine: str = "max") -> np.ndarray:
    """(L, H): the `combine` ("max" or "mean") over tasks of each head's rank in [0, 1]."""
    if combine not in COMBINES:
        raise ConfigError(f"combine {combine!r}: expected one of {', '.join(COMBINES)}")
    ranks = np.stack([rank_normalise(s) for s in scores])
    return ranks.max(axis=0) if combine == "max" else ranks.mean(axis=0)


def joint_ranking(scores: Sequence[np.ndarray], combine: str = "max") -> torch.Tensor:
    """(L, H) distinct ranks 0..L*H-1 ordering heads by the combination (higher = kept longer),
    its ties broken by the other combination; `prune_mask` of it is the joint mask."""
    primary = combine_scores(scores, combine)
    secondary = combine_scores(scores, "mean" if combine == "max" else "max")
    order = np.lexsort((secondary.ravel(), primary.ravel()))  # stable: then by position
    ranking = np.empty(order.size)
    ranking[order] = np.arange(order.size)
    return torch.from_numpy(ranking.reshape(primary.shape))


def joint_prune(
    task_dirs: dict[str, Path] | Sequence[Path],
    out: Path,
    method: str = "hib",
    ratios: Sequence[float] = DEFAULT_RATIOS,
    combine: str = "max",
) -> dict[str, Any]:
    """Prune every task by one mask per ratio; write out/results.json "joint" and
    out/report.html; returns the record. `task_dirs`: {task: run folder}, or run folders named
    by their tasks."""
    names = list(task_dirs) if isinstance(task_dirs, dict) else None
    dirs = [Path(d) for d in (task_dirs.values() if isinstance(task_dirs, dict) else task_dirs)]
    if len(dirs) < 2:
        raise HibError(f"joint pruning needs at least 2 tasks, got {len(dirs)}")
    for i, d in enumerate(dirs):
        if not d.is_dir():
            found = sorted(p.parent.name for p in d.parent.glob(f"*/{RESULTS_FILE}"))
            raise HibError(
                f"{d}: no run folder for task {names[i] if names else d.name} "
                f"(run folders in {d.parent}: {', '.join(found) or 'none'})"
            )
    runs = load_runs(dirs, names)
    scores = method_scores(runs, method)
    for name, d, _ in runs:
        if name not in scores:
            raise HibError(f"{d}: no {method} scores; run `hib score {d} --method {method}` first")
    shapes = {name: s.shape for name, s in scores.items()}
    if len(set(shapes.values())) > 1:
        raise HibError(f"the runs score different heads (heads.scope?): {shapes}")
    for ratio in ratios:
        check_ratio(ratio)
    ranking = joint_ranking(list(scores.values()), combine)
    masks = [prune_mask(ranking, n_to_prune(ratio, ranking.numel())) for ratio in ratios]
    record: dict[str, Any] = {
        "method": method,
        "combine": combine,
        "tasks": [name for name, _, _ in runs],
        "runs": [str(d) for _, d, _ in runs],
        "ratios": list(ratios),
        "scores": combine_scores(list(scores.values()), combine).tolist(),
        "metrics": {},
        "unpruned": {},
        "points": {},
    }
    for name, d, _ in runs:
        run = Run(d, progress=False)
        unpruned = run.test_metric(torch.ones(ranking.shape, dtype=torch.bool))
        record["metrics"][name] = run.metric.to_dict()
        record["unpruned"][name] = unpruned
        record["points"][name] = [
            _point(run, method, ratio, mask, unpruned)
            for ratio, mask in zip(ratios, masks, strict=True)
        ]
    fields = {"joint": record, "upstream": runs[0][2]["upstream"]}
    update_results(out, fields, replace=("joint",))
    write_cross_report(out)
    return record


def _point(run: Run, method: str, ratio: float, mask: torch.Tensor, unpruned: float) -> dict:
    joint = run.test_metric(mask)
    own = run.test_metric(run.mask_for(method, ratio))
    kept, mine = retention(joint, unpruned, run.metric), retention(own, unpruned, run.metric)
    return {
        "ratio": ratio,
        "pruned": int((~mask).sum()),
        "joint": joint,
        "own": own,
        "joint_retention": kept,
        "own_retention": mine,
        "kept_share": kept_share(kept, mine, joint == own),
    }


def kept_share(joint: float | None, own: float | None, same: bool = False) -> float | None:
    """Joint retention / own retention; 1 where both masks give the same metric (`same`), even
    when there is no retention (an unpruned accuracy of 0); None where own retention is 0."""
    if same:
        return 1.0
    return joint / own if joint is not None and own else None
