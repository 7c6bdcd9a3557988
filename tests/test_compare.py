"""The comparison on a tiny trained run: every reported figure present and consistent."""

import json

import pytest

from hib.cli import main
from hib.compare import compare, format_table
from hib.errors import HibError
from hib.pipeline import Run
from hib.report import write_report
from hib.report.html import by_auc
from tests.test_pipeline import run_dir as run_dir  # noqa: F401  (module fixture)
from tests.test_train import setup as setup  # noqa: F401  (module fixture)


def test_compare_writes_the_table_and_the_report(run_dir):  # noqa: F811
    run = Run(run_dir, progress=False)
    table = compare(run, ["random", "magnitude", "hib"], seeds=2, clips=8, ratios=[0, 0.5, 1])
    assert set(table) == {"random", "magnitude", "hib", "ablation"}  # ablation is the reference
    results = json.loads((run_dir / "results.json").read_text())
    stored = results["comparison"]
    assert stored["seeds"] == 2 and stored["clips"] == 8
    for name, row in stored["methods"].items():
        assert 0 <= row["auc"] <= 1, name
        assert len(row["curves_per_seed"]) == 2
        assert row["auc"] == pytest.approx(sum(p["accuracy"] for p in row["curve"][:2]) / 2)
        assert row["seconds"] >= 0
    assert stored["methods"]["ablation"]["spearman_ablation"] == pytest.approx(1.0)
    assert stored["methods"]["magnitude"]["stability"] == pytest.approx(1.0)  # data-free
    assert stored["methods"]["random"]["stability"] < 1.0
    text = format_table(table)
    assert text.splitlines()[0].split()[:2] == ["method", "AUC"]
    assert len(text.splitlines()) == 5
    html = write_report(run_dir).read_text()
    assert "Comparison of every method" in html
    assert html.count('src="data:image/png;base64,') == 4
    # the table (and the panels) best first: the rows' order is by_auc's
    order = by_auc(stored["methods"], run.metric)
    aucs = [stored["methods"][n]["auc"] for n in order]
    assert aucs == sorted(aucs, reverse=True)
    section = html[html.index("Comparison of every method") :]
    rows = [section.index(f"<tr><th>{name}</th>") for name in order]
    assert rows == sorted(rows)


def test_one_methods_own_options_reach_it_and_its_row(run_dir):  # noqa: F811
    run = Run(run_dir, progress=False)
    options = {"attattr": {"steps": 2}}
    table = compare(run, ["attattr"], seeds=1, clips=4, ratios=[0, 0.5], method_options=options)
    assert table["attattr"]["steps"] == 2
    assert "steps" not in table["ablation"]  # only the method named gets the option
    full = compare(run, ["attattr"], seeds=1, clips=4, ratios=[0, 0.5])
    assert "steps" not in full["attattr"]  # its own default (20), not recorded as an override
    assert full["attattr"]["scores"] != table["attattr"]["scores"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"hib": {"beta": 0.1}}, "options for hib: not among the compared methods"),
        ({"attattr": {"stpes": 2}}, "method 'attattr' has no option 'stpes'"),
    ],
)
def test_options_for_a_method_not_compared_or_unknown_are_one_line(run_dir, options, message):  # noqa: F811
    run = Run(run_dir, progress=False)
    with pytest.raises(HibError, match=message):
        compare(run, ["attattr"], seeds=1, clips=4, ratios=[0, 0.5], method_options=options)


def test_the_cli_option_and_grid_reach_the_method(run_dir):  # noqa: F811
    args = ["compare", str(run_dir), "--methods", "attattr", "--seeds", "1", "--clips", "4"]
    assert main([*args, "--option", "attattr.steps=2", "--ratios", "0,0.5"]) == 0
    comparison = json.loads((run_dir / "results.json").read_text())["comparison"]
    row = comparison["methods"]["attattr"]
    assert row["steps"] == 2 and isinstance(row["steps"], int)  # read as YAML, not as text
    assert comparison["ratios"] == [0.0, 0.5]
    assert [p["ratio"] for p in row["curve"]] == [0.0, 0.5]
