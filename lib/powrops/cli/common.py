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
    """argparse with the monitoring exit code (3, UNKNOWN) for bad arguments.

    Every command and subcommand takes ``--server NAME``, so that it may come before or
    after the command's name; unset, it leaves ``args.server`` alone (``$POWROPS_SERVER``,
    else the configuration's only server, applies).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument(
            "--server",
            metavar="NAME",
            default=argparse.SUPPRESS,
            help="the configured server to act on (default $POWROPS_SERVER, else the only one)",
        )

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_UNKNOWN, f"powrops: error: {message}\n")


def settings_of(args: argparse.Namespace) -> Settings:
    """The settings of this run: ``--config``, else ``$POWROPS_CONFIG``, else the defaults."""
    from powrops.config import load_settings

    return load_settings(getattr(args, "config", None), server=getattr(args, "server", None))


def warn_archive_spec(settings: Settings) -> None:
    """Say, on stderr, when the embedded cluster's archive spec sends WAL to another
    repository than ``settings`` name (what ``alerts`` and readiness report as a finding)."""
    from powrops.pg.embedded import archive_warning

    line = archive_warning(settings)
    if line is not None:
        print(f"powrops: warning: {line}", file=sys.stderr)


def add_parameter_option(parser: argparse.ArgumentParser) -> None:
    """``-p KEY VALUE`` (repeatable): a notebook parameter, as ``report run`` and ``runbook``
    take them."""
    parser.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        metavar=("KEY", "VALUE"),
        help="set parameter KEY to VALUE (typed as the parameter's default)",
    )


def print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, sort_keys=False, default=str))
