"""The archive catalog: every run under a reports directory, read from its result.json.

The archive layout is ``<reports_dir>/<report name>/<run id>/`` with ``notebook.ipynb``,
``report.html`` and ``result.json`` for the ``default`` server, and
``<reports_dir>/<server>/<report name>/<run id>/`` for a named server (a folder whose
children hold run folders rather than run files is a server's). A run directory whose final
``result.json`` is missing or unreadable (a killed or still running report) is listed as
UNKNOWN and incomplete, so nothing that happened silently drops out of the index.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from powrops.findings import Severity

RESULT_FILE = "result.json"
HTML_FILE = "report.html"
NOTEBOOK_FILE = "notebook.ipynb"


DEFAULT_SERVER = "default"


def _folders(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def _is_server_dir(folder: Path) -> bool:
    """A named server's folder: its children are report folders holding run folders."""
    children = _folders(folder)
    return bool(children) and all(
        not any((child / f).exists() for f in (RESULT_FILE, HTML_FILE, NOTEBOOK_FILE))
        and bool(_folders(child))
        for child in children
    )


def run_dirs(reports_dir: Path) -> list[Path]:
    """All run directories (``[<server>/]<name>/<run id>``) under ``reports_dir``."""
    if not reports_dir.is_dir():
        return []
    found: list[Path] = []
    for top in _folders(reports_dir):
        reports = _folders(top) if _is_server_dir(top) else [top]
        for report in reports:
            found.extend(_folders(report))
    return found


def server_of(run_dir: Path, reports_dir: Path) -> str:
    """The server a run directory belongs to, from where it lies in the archive."""
    parts = run_dir.relative_to(reports_dir).parts
    return parts[0] if len(parts) == 3 else DEFAULT_SERVER


def read_run(run_dir: Path, reports_dir: Path) -> dict[str, Any]:
    """The catalog entry of one run: its result plus paths relative to ``reports_dir``."""
    entry = _read_result(run_dir)
    entry.setdefault("name", run_dir.parent.name)
    entry.setdefault("run_id", run_dir.name)
    entry["server"] = server_of(run_dir, reports_dir)
    entry["dir"] = run_dir.relative_to(reports_dir).as_posix()
    for key, filename in (("html", HTML_FILE), ("notebook", NOTEBOOK_FILE), ("json", RESULT_FILE)):
        path = run_dir / filename
        entry[key] = path.relative_to(reports_dir).as_posix() if path.exists() else None
    return entry


def list_runs(reports_dir: Path, server: str | None = None) -> list[dict[str, Any]]:
    """Every run in the archive (of ``server`` only, when given), newest first."""
    runs = [read_run(run, reports_dir) for run in run_dirs(reports_dir)]
    if server is not None:
        runs = [run for run in runs if run["server"] == server]
    runs.sort(key=_sort_key, reverse=True)
    return runs


def runs_of(reports_dir: Path, name: str, server: str = DEFAULT_SERVER) -> Iterator[dict[str, Any]]:
    """The runs of report ``name`` on ``server``, newest first, each read only when reached:
    a reader that stops at the run it needs reads no other (``powrops alerts``, every few
    minutes, in an archive of years)."""
    folder = (reports_dir if server == DEFAULT_SERVER else reports_dir / server) / name
    if not folder.is_dir():
        return
    runs = sorted(_folders(folder), key=lambda d: _sort_key({"run_id": d.name}), reverse=True)
    for run_dir in runs:
        yield read_run(run_dir, reports_dir)


def latest(reports_dir: Path, name: str, server: str | None = None) -> dict[str, Any] | None:
    """The newest run of report ``name`` (on ``server``, when given), or None if it never ran."""
    return next((run for run in list_runs(reports_dir, server) if run["name"] == name), None)


def _read_result(run_dir: Path) -> dict[str, Any]:
    """The final result of a run, or an UNKNOWN placeholder saying why there is none."""
    path = run_dir / RESULT_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return _incomplete("incomplete: no result.json (run killed or still running)")
    except (OSError, ValueError) as exc:
        return _incomplete(f"incomplete: unreadable result.json ({exc})")
    if not isinstance(data, dict):
        return _incomplete("incomplete: result.json is not an object")
    if "finished_at" not in data:
        # Only the notebook's own record: the runner never finished this run.
        base = _incomplete("incomplete: the run did not finish")
        base.update({k: data[k] for k in ("findings", "figures", "summary") if k in data})
        return base
    return data


def _incomplete(reason: str) -> dict[str, Any]:
    return {
        "status": Severity.UNKNOWN.name,
        "exit_code": int(Severity.UNKNOWN),
        "failed": True,
        "incomplete": True,
        "error": {"ename": "incomplete", "evalue": reason, "cell_index": None},
        "findings": [],
        "figures": {},
    }


def _sort_key(run: dict[str, Any]) -> tuple[str, str, int]:
    """Order by the UTC second the run started, then the exact start time, then the id's
    suffix.

    Run ids look like ``20261126T061500Z`` (``-2``, ``-3``... when two runs of one report
    start in the same second), so even incomplete runs without a start time sort right. A
    runbook's working copy is named when it is written and may first run hours later: its
    start time, where recorded, places it.
    """
    run_id = str(run.get("run_id") or "")
    base, _, suffix = run_id.partition("-")
    started = str(run.get("started_at") or "")
    return (_second(started) or base, started, int(suffix) if suffix.isdigit() else 0)


def _second(moment: str) -> str | None:
    """An ISO 8601 time as a run id's UTC second (``20261126T061500Z``); None if it is not one."""
    try:
        parsed = datetime.fromisoformat(moment)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
