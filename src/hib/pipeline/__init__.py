"""The Python API behind the CLI: a trained run folder, scored, pruned and reported.

run = Run("runs/demo/ks")
run.score("hib")                        # (L, H) scores -> results.json, scores/hib.safetensors
run.prune("hib", ratios=[0.2, 0.4])     # the task's metric (accuracy, WER) on the test split
run.prune("hib", [0.4], compensate="lsq")  # ... and after a least-squares repair (hib.compensate)
run.prune("fisher", [0.4], rearrange=True)  # ... and with Kwon et al.'s within-layer rearrangement

`Run` (run.py) holds the folder, task, model and splits; scoring.py, pruning.py,
compensation.py and export.py each add one part of what it does.
"""

from hib.pipeline.pruning import mean_curve
from hib.pipeline.run import Run
from hib.pipeline.scoring import RANDOM_SEEDS, VALIDATION_RATIOS

__all__ = ["RANDOM_SEEDS", "VALIDATION_RATIOS", "Run", "mean_curve"]
