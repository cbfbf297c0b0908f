"""``powrops schedule [--format cron|systemd|airflow] [--output DIR]``.

Prints the configured schedule of one server as a crontab, as systemd ``.timer`` +
``.service`` units, or as an Airflow DAG file; with ``--output DIR`` writes the files there
instead (``powrops.cron``; one file per unit and a README; for Airflow a ``powrops_<server>.py``
per configured server and ``powrops_pools.json``). Exit 0, or 3 when the configuration cannot
be scheduled.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from powrops.findings import Severity


def register(sub: Any) -> None:
    """Add the ``schedule`` subcommand to the ``powrops`` parser's subparsers."""
    parser = sub.add_parser(
        "schedule", help="the configured schedule as crontab lines, systemd timers or Airflow DAGs"
    )
    parser.add_argument(
        "--format",
        choices=["cron", "systemd", "airflow"],
        default="cron",
        help="crontab lines, systemd units or Airflow DAG files (cron)",
    )
    parser.add_argument("--output", metavar="DIR", help="write the files into DIR")
    parser.set_defaults(func=cmd_schedule)


def cmd_schedule(args: argparse.Namespace) -> Severity:
    from powrops.config import load_settings, server_names
    from powrops.errors import ParameterError
    from powrops.schedule.airflow import airflow_files, dag_file, dag_file_name
    from powrops.schedule.jobs import crontab, systemd_units

    explicit = getattr(args, "config", None)
    # every job reads the file these settings were loaded from, by absolute path
    if args.format == "airflow":  # every server: the fleet's review waits for each review
        every = [load_settings(explicit, server=name) for name in server_names(explicit)]
        if args.output is not None:
            files = airflow_files(every, every[0].config_file)
        else:
            settings = load_settings(explicit)
            files = {dag_file_name(settings.server): dag_file(settings, settings.config_file,
                                                              every)}  # fmt: skip
    else:
        settings = load_settings(explicit)
        files = (
            {"powrops.cron": crontab(settings, settings.config_file)}
            if args.format == "cron"
            else systemd_units(settings, settings.config_file)
        )
    if args.output is None:
        if len(files) == 1:
            print(next(iter(files.values())), end="")
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
