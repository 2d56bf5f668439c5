"""The tools agents can name, registered by importing their modules."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from actors.engine.tools import ToolRegistry
from actors.tools import support


def build_registry(extra_modules: Iterable[str] = ()) -> ToolRegistry:
    """The shipped tools plus those of each module that has a `register(registry)`."""
    registry = ToolRegistry()
    support.register(registry)
    for name in extra_modules:
        importlib.import_module(name).register(registry)
    return registry
