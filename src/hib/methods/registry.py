"""Name -> method class, so the CLI and the shared test table reach every method alike."""

from __future__ import annotations

import inspect
from typing import Any

from hib.errors import HibError
from hib.methods.base import HeadMethod

METHODS: dict[str, type[HeadMethod]] = {}


def register(cls: type[HeadMethod]) -> type[HeadMethod]:
    METHODS[cls.name] = cls
    return cls


def method_class(name: str) -> type[HeadMethod]:
    if name not in METHODS:
        raise HibError(f"unknown method '{name}' (known: {', '.join(sorted(METHODS))})")
    return METHODS[name]


def get_method(name: str, **options: Any) -> HeadMethod:
    cls = method_class(name)
    known = {p for c in cls.__mro__[:-1] for p in inspect.signature(c.__init__).parameters}
    unknown = sorted(set(options) - known)
    if unknown:
        raise HibError(f"method '{name}' has no option {', '.join(map(repr, unknown))}")
    return cls(**options)
