"""One pruning for several tasks: a keep-mask per pruned fraction that serves every task.

Each task's scores for a method are rank-normalised to [0, 1] (`rank_normalise`: capacities
in bits, accuracy drops and loss rises meet on one scale, and no task outweighs the others by
its units), then combined head by head across the tasks by a power mean of the ranks,
(mean_t rank_t ** p) ** (1 / p), which runs from "what matters on average" to "what any task
needs most":

- "mean" (p = 1): the heads that matter on average; a head only one task needs can go early;
- "power2", "power4" (p = 2, 4): in between, a high rank on one task counts more than a
  middling rank on several;
- "max" (p = infinity): a head is as important as the task that needs it most, so every
  task's own most needed heads are the last to go, but one task's noisy score can shield a
  head the others do not need;
- "validated" (default): the one of these four whose joint masks serve the worst-served task
  best on the tasks' *validation* splits: the largest mean over the pruned fractions of the
  smallest kept share over the tasks (ties: the largest mean kept share, then the order
  above from max down). Which combination suits depends on how far the tasks' rankings
  agree, so it is measured, not assumed; the test split only reports the choice.

Ties of the combination (frequent for the max of ranks) are broken by the other statistic
(the mean for "max", the max otherwise), then by position, as `prune_mask` does. One
combination serves every fraction, so the joint masks are nested like a single task's.

`joint_prune` measures each task's metric on its test split with the joint mask and with the
task's own mask at the same fraction, and their "kept share": joint retention / own retention
(`hib.cross_task.stats.retention`), 1 = the joint mask costs the task nothing.
"""

from __future__ import annotations

import math
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

POWERS = {"max": math.inf, "power4": 4.0, "power2": 2.0, "mean": 1.0}
VALIDATED = "validated"
COMBINES = (VALIDATED, *POWERS)
DEFAULT_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)


def check_combine(combine: str) -> str:
    if combine not in COMBINES:
        raise ConfigError(f"combine {combine!r}: expected one of {', '.join(COMBINES)}")
    return combine


def combine_scores(scores: Sequence[np.ndarray], combine: str = "max") -> np.ndarray:
    """(L, H): the `combine` power mean (POWERS) over tasks of each head's rank in [0, 1]."""
    power = POWERS.get(check_combine(combine))
    if power is None:
        raise ConfigError(f"combine {combine!r} is chosen on validation: pass one of {POWERS}")
    ranks = np.stack([rank_normalise(s) for s in scores])
    if power == math.inf:
        return ranks.max(axis=0)
    return (ranks**power).mean(axis=0) ** (1 / power)


def joint_ranking(scores: Sequence[np.ndarray], combine: str = "max") -> torch.Tensor:
    """(L, H) distinct ranks 0..L*H-1 ordering heads by the combination (higher = kept longer),
    its ties broken by another combination; `prune_mask` of it is the joint mask."""
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
    combine: str = VALIDATED,
) -> dict[str, Any]:
    """Prune every task by one mask per ratio; write out/results.json "joint" and
    out/report.html; returns the record. `task_dirs`: {task: run folder}, or run folders named
    by their tasks."""
    check_combine(combine)
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
    tasks = {name: Run(d, progress=False) for name, d, _ in runs}
    grids = list(scores.values())
    record: dict[str, Any] = {"method": method, "combine": combine}
    if combine == VALIDATED:
        record["validation"] = validation_table(tasks, method, grids, ratios)
        combine = record["combine"] = best_combine(record["validation"])
    ranking = joint_ranking(grids, combine)
    masks = [prune_mask(ranking, n_to_prune(ratio, ranking.numel())) for ratio in ratios]
    record |= {
        "tasks": list(tasks),
        "runs": [str(d) for _, d, _ in runs],
        "ratios": list(ratios),
        "scores": combine_scores(grids, combine).tolist(),
        "metrics": {name: run.metric.to_dict() for name, run in tasks.items()},
        "unpruned": {},
        "points": {},
    }
    for name, run in tasks.items():
        unpruned = run.test_metric(_unpruned(ranking))
        record["unpruned"][name] = unpruned
        record["points"][name] = [
            _point(run, "test", method, ratio, mask, unpruned)
            for ratio, mask in zip(ratios, masks, strict=True)
        ]
    fields = {"joint": record, "upstream": runs[0][2]["upstream"]}
    update_results(out, fields, replace=("joint",))
    write_cross_report(out)
    return record


def validation_table(
    tasks: dict[str, Run], method: str, grids: Sequence[np.ndarray], ratios: Sequence[float]
) -> dict[str, dict]:
    """Per combination of POWERS: each task's kept share on its validation split at each
    ratio, and "worst": the mean over the ratios of the smallest share over the tasks."""
    table = {}
    for combine in POWERS:
        ranking = joint_ranking(grids, combine)
        shares = {}
        for name, run in tasks.items():
            unpruned = run.split_metric("validation", _unpruned(ranking))
            shares[name] = [
                _point(
                    run,
                    "validation",
                    method,
                    r,
                    prune_mask(ranking, n_to_prune(r, ranking.numel())),
                    unpruned,
                )["kept_share"]
                for r in ratios
            ]
        table[combine] = {"kept_share": shares, **_summary(shares, len(ratios))}
    return table


def _summary(shares: dict[str, list], n_ratios: int) -> dict[str, float]:
    """ "worst": mean over ratios of the min over tasks; "mean": of the mean (None, an own mask
    that keeps nothing, is left out: no joint mask can do worse than it)."""
    worst, mean = [], []
    for i in range(n_ratios):
        known = [s[i] for s in shares.values() if s[i] is not None]
        worst.append(min(known, default=1.0))
        mean.append(float(np.mean(known)) if known else 1.0)
    return {"worst": float(np.mean(worst)), "mean": float(np.mean(mean))}


def best_combine(table: dict[str, dict]) -> str:
    """The combination serving the worst-served task best (ties: the larger mean share, then
    POWERS' order)."""
    order = list(POWERS)
    return max(table, key=lambda c: (table[c]["worst"], table[c]["mean"], -order.index(c)))


def _unpruned(ranking: torch.Tensor) -> torch.Tensor:
    return torch.ones(ranking.shape, dtype=torch.bool)


def _point(
    run: Run, split: str, method: str, ratio: float, mask: torch.Tensor, unpruned: float
) -> dict:
    joint = run.split_metric(split, mask)
    own = run.split_metric(split, run.mask_for(method, ratio))
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
