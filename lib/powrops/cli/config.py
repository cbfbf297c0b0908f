"""``powrops config show [--json] | check [FILE]``: the effective configuration."""

from __future__ import annotations

import argparse
from typing import Any

from powrops.cli.common import Parser, print_json, settings_of
from powrops.findings import Severity


def register(sub: Any) -> None:
    config = sub.add_parser("config", help="show or check the configuration").add_subparsers(
        dest="action", required=True, parser_class=Parser
    )
    show = config.add_parser("show", help="print the effective configuration, secrets redacted")
    show.add_argument("--json", action="store_true", help="print the result as JSON")
    show.set_defaults(func=cmd_config_show)
    check = config.add_parser("check", help="validate a config file (exit 3 when invalid)")
    check.add_argument("config_file", nargs="?", metavar="file")
    check.set_defaults(func=cmd_config_check)


def cmd_config_show(args: argparse.Namespace) -> Severity:
    from powrops.config import redacted_dict, to_toml

    loaded = settings_of(args)
    data = redacted_dict(loaded)
    if args.json:
        print_json(data)
    else:
        print(
            f"# effective configuration of server {loaded.server!r} ({loaded.source}); "
            "secrets are redacted"
        )
        print(to_toml(data), end="")
    return Severity.OK


def cmd_config_check(args: argparse.Namespace) -> Severity:
    """Validate the chosen server's settings, or every server's when none is chosen."""
    import os

    from powrops.config import SERVER_ENV, load_settings, server_names

    file = args.config_file or getattr(args, "config", None)
    chosen = getattr(args, "server", None) or os.environ.get(SERVER_ENV)
    for name in [chosen] if chosen else server_names(file):
        loaded = load_settings(file, server=name)
        print(f"configuration OK ({loaded.source})")
    return Severity.OK
