"""What a report's kernel loads while it waits for its cells.

A report run starts its kernel with one startup line (``kernel.preload_options``) that calls
:func:`start` with the modules the notebook's cells import and whether a cell draws a figure:
a thread loads them, and matplotlib's pyplot as :func:`~powrops.reports.plotting.pyplot` sets
it up, while papermill sends the parameters and the first cell runs its queries. A cell that
imports one of them finds it loaded, or waits for the thread to finish loading it: the same
modules, the same settings, the same results. A module that fails to load here is left to the
cell that imports it, which reports the error as without this. Only report runs start it;
JupyterLab's kernels do not.
"""

from __future__ import annotations

import contextlib
import importlib
import threading
from collections.abc import Sequence

from powrops.reports import plotting

THREAD_NAME = "powrops-preload"


def start(modules: Sequence[str], figures: bool) -> None:
    """Load ``modules`` (and pyplot, with ``figures``) in a daemon thread."""
    thread = threading.Thread(
        target=load, args=(tuple(modules), figures), name=THREAD_NAME, daemon=True
    )
    thread.start()


def load(modules: Sequence[str], figures: bool) -> None:
    """Load ``modules``, which the first cell imports, and then pyplot (with ``figures``),
    which a figure needs later: it loads while the first cell runs its queries."""
    for name in modules:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    if figures:
        with contextlib.suppress(Exception):
            plotting.pyplot()
