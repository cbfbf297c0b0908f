"""Subcommand groups of the ``powrops`` CLI that live outside ``cli.py``.

Each module of this package has ``register(sub)`` adding its parsers; handlers import what they
need when they run, so that registering costs nothing at start. ``register_all`` finds the
modules by listing the package, so a new command group is one new file.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any


def register_all(sub: Any) -> None:
    """Call ``register(sub)`` of every module in this package, in name order."""
    names = sorted(info.name for info in pkgutil.iter_modules(__path__) if not info.ispkg)
    for name in names:
        module = importlib.import_module(f"{__name__}.{name}")
        module.register(sub)
