"""``powrops schedule [--format cron|systemd] [--output DIR]``.

Prints the configured schedule as a crontab, or as systemd ``.timer`` + ``.service`` units;
with ``--output DIR`` writes the files there instead (``powrops.cron``, or one file per unit and
a README). Exit 0, or 3 when the configuration cannot be scheduled.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from powrops.findings import Severity


def register(sub: Any) -> None:
    """Add the ``schedule`` subcommand to the ``powrops`` parser's subparsers."""
    parser = sub.add_parser(
        "schedule", help="the configured schedule as crontab lines or systemd timers"
    )
    parser.add_argument(
        "--format",
        choices=["cron", "systemd"],
        default="cron",
        help="crontab lines or systemd units (cron)",
    )
    parser.add_argument("--output", metavar="DIR", help="write the files into DIR")
    parser.set_defaults(func=cmd_schedule)


def cmd_schedule(args: argparse.Namespace) -> Severity:
    from powrops.config import config_path, load_settings
    from powrops.errors import ParameterError
    from powrops.schedule.jobs import crontab, systemd_units

    explicit = getattr(args, "config", None)
    settings = load_settings(explicit)
    config_file = config_path(explicit)
    if args.format == "cron":
        files = {"powrops.cron": crontab(settings, config_file)}
    else:
        files = systemd_units(settings, config_file)
    if args.output is None:
        if args.format == "cron":
            print(files["powrops.cron"], end="")
        else:
            for name, text in files.items():
                print(f"# ==> {name} <==\n{text}")
        return Severity.OK
    out = Path(args.output)
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (out / name).write_text(text)
    except OSError as exc:
        raise ParameterError(f"--output {out}: cannot write the files: {exc}") from exc
    print(f"wrote {len(files)} files to {out}")
    return Severity.OK
