"""Folders for test helpers that build settings outside a fixture (no ``tmp_path`` at hand)."""

from __future__ import annotations

import atexit
import shutil
import tempfile


def scratch_dir(prefix: str) -> str:
    """A new folder in the temporary directory, removed when the test process ends (a state
    directory the test leaves behind would otherwise stay there, one per call)."""
    path = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, path, True)
    return path
