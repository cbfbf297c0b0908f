"""The command groups of ``powrops``: every module of this package but ``main``, ``common``
and this one.

Each has ``register(sub)`` adding its parsers; handlers import what they
need when they run, so that registering costs nothing at start. ``register_all`` finds the
modules by listing the package, so a new command group is one new file.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

_NOT_GROUPS = {"__main__", "common", "main", "registry"}


def group_names() -> list[str]:
    """The command groups' module names, in name order."""
    package = importlib.import_module("powrops.cli")
    return sorted(
        info.name
        for info in pkgutil.iter_modules(package.__path__)
        if not info.ispkg and info.name not in _NOT_GROUPS
    )


def register_all(sub: Any, names: list[str] | None = None) -> None:
    """Call ``register(sub)`` of every module in this package (or of ``names``), in order."""
    for name in group_names() if names is None else names:
        module = importlib.import_module(f"powrops.cli.{name}")
        module.register(sub)
