"""The demo's plans: every grid parses and every method option it passes is one the method has
(a typo would only surface after the demo's first half hour)."""

import pytest

from hib.compensate import check_clips, check_kind
from hib.config import load_config, packaged_config
from hib.demo import PLANS, QUICK_PLANS, TASKS, demo_plans, run_demo
from hib.errors import UpstreamError
from hib.methods import get_method
from hib.prune import parse_ratios
from hib.tasks.base import task_class


@pytest.mark.parametrize("plans", [PLANS, QUICK_PLANS], ids=["demo", "quick"])
def test_every_plan_is_runnable_as_written(plans):
    assert set(plans) == set(TASKS)
    assert all(task_class(task).name == task for task in TASKS)
    for plan in plans.values():
        for grid in (plan.validation_ratios, plan.sweep, plan.compare_ratios):
            assert all(0 <= r <= 1 for r in parse_ratios(grid))
        assert all(0 < r < 1 for r in plan.refit_ratios)
        for method, options in plan.compare_options.items():
            assert get_method(method, **options).options().items() >= options.items()
        if plan.compare_compensate is not None:
            assert check_kind(plan.compare_compensate) and check_clips(plan.compensate_clips)


@pytest.mark.parametrize("quick", [False, True], ids=["demo", "quick"])
def test_plans_on_another_upstream_keep_every_grid_and_change_only_the_upstream(quick):
    plans = demo_plans(quick, upstream="whisper-base")
    for task, plan in plans.items():
        mine = (QUICK_PLANS if quick else PLANS)[task]
        assert plan.sweep == mine.sweep and plan.score_clips == mine.score_clips
        config = load_config(packaged_config(plan.config), [f"task={task}", *plan.overrides])
        assert config.upstream.name == "whisper-base"
    assert demo_plans(quick) is (QUICK_PLANS if quick else PLANS)


def test_an_unknown_upstream_fails_before_any_work(tmp_path):
    with pytest.raises(UpstreamError, match="no packaged Whisper 'nope'"):
        run_demo(tmp_path / "demo", upstream="nope")
    assert not (tmp_path / "demo").exists()
