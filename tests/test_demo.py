"""The demo's plans: every grid parses and every method option it passes is one the method has
(a typo would only surface after the demo's first half hour)."""

import pytest

from hib.demo import PLANS, QUICK_PLANS, TASKS
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
