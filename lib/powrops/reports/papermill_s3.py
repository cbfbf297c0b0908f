"""papermill's S3 handler, loaded when an ``s3://`` notebook is first read or written instead
of at start-up.

papermill's ``iorw`` imports its ``s3`` module on import, and that module imports boto3 (about
0.05 s of CPU in every ``powrops report run``, where boto3 is installed for the backup
repositories), for ``s3://`` notebook paths, which report runs never use: they read the
notebook from the checkout and keep the executed one in memory.

Importing this module (the runner and :mod:`.spec` do, before they load papermill) puts a
finder first on ``sys.meta_path`` that answers the first import of ``papermill.s3`` with a
stand-in (and then steps aside). ``iorw`` binds the stand-in's ``S3``; its first call, or any
other attribute asked of the stand-in, imports the real module in its place and hands the call
on, so an ``s3://`` path works as before. Nothing is done when papermill or boto3 is absent or
papermill was already imported.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from typing import Any

MODULE = "papermill.s3"


def _real() -> Any:
    """The real ``papermill.s3``, imported in place of the stand-in."""
    if isinstance(sys.modules.get(MODULE), _StandIn):
        del sys.modules[MODULE]
    import papermill.s3

    return papermill.s3


class _StandIn(types.ModuleType):
    """What ``from .s3 import S3`` finds in papermill until an ``s3://`` path is used."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # what the import system asks loads nothing
            raise AttributeError(name)
        return getattr(_real(), name)


def S3(*args: Any, **kwargs: Any) -> Any:
    """A real ``papermill.s3.S3`` (what papermill's S3 handler calls for every use)."""
    return _real().S3(*args, **kwargs)


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers the first import of ``papermill.s3`` with the stand-in."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != MODULE:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)  # once: the real module is found the next time
        return importlib.machinery.ModuleSpec(name, self)

    def create_module(self, spec: Any) -> types.ModuleType:
        return _StandIn(spec.name, __doc__)

    def exec_module(self, module: types.ModuleType) -> None:
        module.S3 = S3  # type: ignore[attr-defined]


def defer() -> bool:
    """Put the finder in place; True when it was (see the module's docstring)."""
    if "papermill" in sys.modules or MODULE in sys.modules:
        return False
    if importlib.util.find_spec("papermill") is None or importlib.util.find_spec("boto3") is None:
        return False
    sys.meta_path.insert(0, _Finder())
    return True


defer()
