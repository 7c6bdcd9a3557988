"""Head-importance methods, one small class each, registered by name."""

from __future__ import annotations

# Importing the method modules registers them.
from hib.methods import hib as _hib  # noqa: E402,F401
from hib.methods import random as _random  # noqa: E402,F401
from hib.methods.base import HeadMethod
from hib.methods.registry import METHODS, get_method, register

__all__ = ["METHODS", "HeadMethod", "get_method", "register"]
