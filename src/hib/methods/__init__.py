"""Head-importance methods, one small class each, registered by name."""

from __future__ import annotations

# Importing the method modules registers them.
from hib.methods import ablation as _ablation  # noqa: E402,F401
from hib.methods import attattr as _attattr  # noqa: E402,F401
from hib.methods import attention_stats as _attention_stats  # noqa: E402,F401
from hib.methods import fisher as _fisher  # noqa: E402,F401
from hib.methods import greedy as _greedy  # noqa: E402,F401
from hib.methods import hib as _hib  # noqa: E402,F401
from hib.methods import hib_attn as _hib_attn  # noqa: E402,F401
from hib.methods import l0 as _l0  # noqa: E402,F401
from hib.methods import magnitude as _magnitude  # noqa: E402,F401
from hib.methods import random as _random  # noqa: E402,F401
from hib.methods import shapley as _shapley  # noqa: E402,F401
from hib.methods import taylor as _taylor  # noqa: E402,F401
from hib.methods.base import HeadMethod
from hib.methods.registry import METHODS, get_method, method_class, register

__all__ = ["METHODS", "HeadMethod", "get_method", "method_class", "register"]
