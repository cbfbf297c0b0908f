"""What the command groups share: the argument parser class, the run's settings, JSON output.

Handlers return a :class:`~powrops.findings.Severity` (or its int value); ``main`` turns it
into the exit code through :func:`powrops.findings.exit_code`, the one mapping every command
uses.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from powrops.errors import EXIT_UNKNOWN

if TYPE_CHECKING:
    from powrops.config import Settings


class Parser(argparse.ArgumentParser):
    """argparse with the monitoring exit code (3, UNKNOWN) for bad arguments."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_UNKNOWN, f"powrops: error: {message}\n")


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings of this run: ``--config``, else ``$POWROPS_CONFIG``, else the defaults."""
    from powrops.config import load_settings

    return load_settings(getattr(args, "config", None))


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=False, default=str))
