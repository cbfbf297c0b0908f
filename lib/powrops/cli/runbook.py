"""``powrops runbook NAME [-p KEY VALUE ...]``: open a runbook's working copy for an incident."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from functools import partial
from typing import Any

from powrops.cli.common import add_parameter_option, check_parameters
from powrops.findings import Severity
from powrops.format import human_time


def register(sub: Any) -> None:
    runbook = sub.add_parser(
        "runbook",
        help="open a runbook's working copy in the report archive",
        description="Write runbook NAME, with its parameters, as a working copy into a new run "
        "folder of the report archive, and print where to open it in JupyterLab. The template "
        "in runbooks/ is never changed; every cell run in the copy is archived as it runs.",
    )
    runbook.add_argument("name", help="the runbook (powrops report list shows them)")
    add_parameter_option(runbook)
    runbook.set_defaults(func=cmd_runbook)


def cmd_runbook(args: argparse.Namespace) -> Severity:
    from powrops.cli.common import settings_of
    from powrops.db import identity
    from powrops.errors import PowropsError
    from powrops.reports import workcopy

    loaded = settings_of(args)
    workcopy.runbook_spec(args.name)  # an unknown name is said before anything else
    earlier = workcopy.unfinished(loaded.reports_dir, loaded.server, args.name)
    try:
        acting_on = identity(loaded)
        print(f"{args.name}: database {acting_on.describe()}", file=sys.stderr)
        target = acting_on.to_dict()
    except PowropsError as exc:  # the runbook may be what finds out why
        print(f"{args.name}: the database does not answer now ({exc})", file=sys.stderr)
        target = None
    copy = workcopy.create(
        args.name,
        {key: value for key, value in args.parameter or []},
        reports_dir=loaded.reports_dir,
        server=loaded.server,
        target=target,
        config_file=loaded.config_file,
        check=partial(check_parameters, loaded=loaded),
    )
    print(f"working copy: {copy.notebook}")
    url = workcopy.lab_url(copy.notebook)
    if url is not None:
        print(f"open it in JupyterLab: {url}")
    else:
        print(f"no JupyterLab runs here: {workcopy.lab_hint(copy.notebook, loaded.reports_dir)}")
    _say_earlier(args.name, earlier)
    return Severity.OK


def _say_earlier(name: str, earlier: list[tuple[Any, dict[str, Any]]]) -> None:
    """Name the earlier copies of ``name`` not finished, newest first (at most three): a
    second open makes a new copy, and the incident's evidence would else be split unseen."""
    if not earlier:
        return
    print(f"earlier copies of {name} not finished (go on in one of them, or in this new one):")
    for notebook, result in earlier[:3]:
        cells = result.get("cells_run") or 0
        state = "stopped on an error" if result.get("failed") else f"{cells} cells run"
        if not cells:
            state = "no cell run"
        print(f"  {notebook} (opened {human_time(_when(result))}, {state})")
    if len(earlier) > 3:
        print(f"  and {len(earlier) - 3} older")


def _when(result: dict[str, Any]) -> datetime | None:
    try:
        return datetime.fromisoformat(str(result.get("created_at")))
    except ValueError:
        return None
