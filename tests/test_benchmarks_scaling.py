"""benchmarks/scaling.py --quick: every registry method in every cell, and the extrapolation.

With `--cap 0` every cell that has a prediction is extrapolated instead of run: the first clip
count is measured (greedy aside: predicted from ablation), the second extrapolated from it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hib.methods import METHODS

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "scaling.py"


def test_quick_scaling_records_every_method_with_positive_ratios(tmp_path: Path):
    out = tmp_path / "scaling.json"
    command = [sys.executable, str(SCRIPT), "--quick", "--cap", "0", "--json", str(out)]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    record = json.loads(out.read_text())
    assert record["device"] == "cpu" and record["cheap_settings"]["attattr"] == {"steps": 5}
    assert len(record["shapes"]) == 2
    for shape in record["shapes"].values():
        assert shape["n_heads"] == shape["layers"] * shape["heads"]
        assert list(shape["cells"]) == ["2", "4"]
        for clips, cell in shape["cells"].items():
            assert cell["pass_s"] > 0
            assert set(cell["methods"]) == set(METHODS)
            for name, entry in cell["methods"].items():
                assert "error" not in entry, (name, entry)
                assert entry["seconds"] > 0 and entry["ratio"] > 0
                first = clips == "2" and name != "greedy"
                assert entry["measured"] == first, (clips, name)
                assert ("options" in entry) == first and ("basis" in entry) != first
    assert record["shapes"]["quick-2x2"]["cells"]["2"]["methods"]["greedy"]["basis"].startswith(
        "ablation"
    )
    growth = record["growth"]
    assert set(growth) == {"pass", *METHODS}
    assert growth["hib"]["heads_exponent"]["2"] is not None
    assert growth["hib"]["clips_exponent"]["quick-2x2"] is None  # one measured clip count
