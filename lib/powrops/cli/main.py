"""The ``powrops`` command: the parser wired from every command group, and the exit code.

Each module of this package is one command group with ``register(sub)``; their handlers
import what they need when they run, so that short commands start fast. Exit codes follow
the monitoring convention: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (the command could not
judge: bad arguments or config, an unreachable database, a failed run).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from powrops import __version__
from powrops.cli.common import Parser
from powrops.cli.registry import register_all
from powrops.errors import EXIT_UNKNOWN, PowropsError
from powrops.findings import Severity, exit_code

Handler = Callable[[argparse.Namespace], "Severity | int"]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="powrops", description="Data-management toolkit for POWR's PostgreSQL.")
    parser.add_argument("--version", action="version", version=f"powrops {__version__}")
    parser.add_argument(
        "-c", "--config", help="config file (default $POWROPS_CONFIG, ./powrops.toml)"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    register_all(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(arguments)
    func: Handler = args.func
    try:
        return exit_code(func(args))
    except PowropsError as exc:
        print(f"powrops: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("powrops: interrupted", file=sys.stderr)
        return EXIT_UNKNOWN


if __name__ == "__main__":
    sys.exit(main())
