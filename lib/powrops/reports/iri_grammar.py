"""jsonschema's IRI format check, built when it is first used instead of at start-up.

nbformat validates notebooks with jsonschema. When the ``rfc3987-syntax`` package is
installed (JupyterLab's jupyter-events asks for it), importing jsonschema imports it too,
and it compiles an Earley parser of the IRI grammar on import: about a second of every
process that reads a notebook (papermill, nbclient and nbconvert all load nbformat), for the
``iri`` and ``iri-reference`` formats, which no notebook schema uses.

Importing this module (``powrops.reports`` does, before anything of it loads nbformat) puts
a stand-in in ``sys.modules`` under that name. jsonschema binds the stand-in's
``is_valid_syntax``; the first call, or any other attribute asked of the stand-in, imports
the real package in its place and hands the call on, so every check answers as before.
Nothing is done when the package is absent or jsonschema was already imported.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from typing import Any

MODULE = "rfc3987_syntax"


def _real() -> Any:
    """The real package, imported in place of the stand-in."""
    if isinstance(sys.modules.get(MODULE), _StandIn):
        del sys.modules[MODULE]
    import rfc3987_syntax  # type: ignore[import-untyped]

    return rfc3987_syntax


class _StandIn(types.ModuleType):
    """What ``import rfc3987_syntax`` finds until the grammar is first needed."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # what the import system asks (``__path__``) loads nothing
            raise AttributeError(name)
        return getattr(_real(), name)


def is_valid_syntax(term: str, value: str) -> bool:
    """The real ``rfc3987_syntax.is_valid_syntax`` (what jsonschema's format checks call)."""
    return bool(_real().is_valid_syntax(term, value))


def defer() -> bool:
    """Put the stand-in in place; True when it was (see the module's docstring)."""
    if MODULE in sys.modules or "jsonschema" in sys.modules:
        return False
    spec = importlib.util.find_spec(MODULE)
    if spec is None:
        return False
    stand_in = _StandIn(MODULE, __doc__)
    stand_in.__spec__ = spec  # what importlib.util.find_spec answers, as for the real one
    stand_in.__path__ = list(spec.submodule_search_locations or [])  # its modules import too
    stand_in.is_valid_syntax = is_valid_syntax  # type: ignore[attr-defined]
    sys.modules[MODULE] = stand_in
    return True


defer()
