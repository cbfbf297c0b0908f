"""How a report notebook records its result for the runner.

The runner sets ``POWROPS_RUN_DIR`` to the run's archive directory before it starts the
kernel. A notebook calls :func:`record` once, near its end; the result is written to
``result.json`` there and later merged by the runner with what it knows about the run
(timings, parameters, versions). In a runbook's working copy (``powrops runbook NAME``), the
kernel's recorder (:mod:`powrops.reports.evidence`) sets ``POWROPS_WORKING_COPY`` to the run's
folder: the result is written to ``recorded.json`` there and the recorder merges it into the
run's ``result.json`` after the cell. Anywhere else :func:`record` only returns the result.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from powrops import gate
from powrops.findings import Finding, Severity, overall, worst
from powrops.gate import RUN_DIR_ENV as RUN_DIR_ENV
from powrops.gate import WORKING_COPY_ENV as WORKING_COPY_ENV

RESULT_FILE = "result.json"
#: What :func:`record` writes in a working copy's run folder, for the recorder to merge.
RECORDED_FILE = "recorded.json"

Figure = int | float | str | bool | None


class Recorded(dict[str, Any]):
    """The recorded result. In a report run it shows nothing (the page has said it all); in a
    working copy one line says where it went; elsewhere one line says that nothing was recorded
    and how to run the runbook so that it is, instead of the whole dict."""

    def _ipython_display_(self) -> None:
        if current_run_dir() is not None:
            return
        copy = working_copy_dir()
        if copy is not None:
            print(f"Recorded: {self['status']}, archived with every cell run in {copy}")
        else:
            print(
                f"Not recorded: {self['status']}. This notebook is not a working copy: "
                "`powrops runbook NAME` opens one that is archived as it runs."
            )


def current_run_dir() -> Path | None:
    """The archive directory of the run executing this notebook, or None outside a run."""
    value = os.environ.get(RUN_DIR_ENV)
    return Path(value) if value else None


def working_copy_dir() -> Path | None:
    """The run folder of the working copy this kernel records, or None."""
    value = os.environ.get(WORKING_COPY_ENV)
    return Path(value) if value else None


def record(
    status: Severity | str | int | None = None,
    findings: Iterable[Finding] = (),
    figures: Mapping[str, Any] | None = None,
    summary: str | None = None,
    period: str | None = None,
) -> Recorded:
    """Record the notebook's result and return it as a dict.

    ``status`` defaults to the worst severity among ``findings``. ``figures`` are the
    headline numbers shown in the archive index (name -> number or short text). ``period``
    says what span of time the report covers ('backups from ... to ...'); the page header and
    the index show it.

    The run's confirmations (:mod:`powrops.gate`) are recorded with it, and one rule holds for
    every runbook: an action asked for and refused (another name typed at the prompt) is a
    WARNING finding saying that it was not run, and the run is at least WARNING. A dry run
    (the parameter False, or Enter at the prompt) stays as its findings say.
    """
    found = list(findings)
    for item in found:
        if not isinstance(item, Finding):
            raise TypeError(f"findings must be Finding objects, got {type(item).__name__}")
    run_dir = current_run_dir()
    copy = working_copy_dir()
    folder = run_dir or copy
    decided = gate.decisions(folder) if folder is not None else []
    refusals = refused(decided)
    severity = overall(found) if status is None else Severity.parse(status)
    severity = worst([severity, *(f.severity for f in refusals)])
    result = Recorded(
        {
            "status": severity.name,
            "exit_code": int(severity),
            "summary": summary or "; ".join(f.message for f in refusals) or None,
            "period": period,
            "findings": [_jsonable(f.to_dict()) for f in [*refusals, *found]],
            "figures": {str(k): _figure(v) for k, v in (figures or {}).items()},
            "confirmations": decided,
        }
    )
    if run_dir is not None:
        write_json(run_dir / RESULT_FILE, result)
    elif copy is not None:
        write_json(copy / RECORDED_FILE, result)
    return result


def refused(decided: Iterable[Mapping[str, Any]]) -> list[Finding]:
    """A WARNING finding for each action asked for and refused at its prompt."""
    return [
        Finding(
            "confirmation.refused",
            Severity.WARNING,
            f"Not confirmed: {d['action']} was asked for and NOT run ({d.get('typed')!r} typed, "
            f"not {d.get('expected')!r}); nothing was changed",
            object=str(d.get("parameter")),
            advice="run the confirmation cell again and type the name it asks for",
        )
        for d in decided
        if d.get("refused")
    ]


def write_json(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON atomically (temporary file, then rename)."""
    write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def write_text(path: Path, text: str) -> None:
    """Write ``text`` atomically: a reader sees the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _figure(value: Any) -> Figure:
    """A headline figure as a JSON scalar (numpy numbers become Python numbers)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return None if math.isnan(value) else float(value)
    item = getattr(value, "item", None)
    if callable(item):
        return _figure(item())
    return str(value)


def _jsonable(value: Any) -> Any:
    """A JSON-serialisable copy of ``value``; unknown objects become their ``str``."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, Severity):
        return value.name
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    return _figure(value)
