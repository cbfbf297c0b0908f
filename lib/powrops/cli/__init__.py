"""The ``powrops`` command: one module per command group, wired together by ``main``."""

from __future__ import annotations

from powrops.cli.main import main as main
