"""Reports: papermill runs into an archive of self-contained HTML, and notebook helpers.

Notebooks call :func:`record` and the ``show_*`` helpers; the CLI and schedulers call
:func:`run_report`; the archive index is rebuilt by :func:`build_index` from the catalog.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from powrops.errors import PowropsError
from powrops.reports.catalog import latest, list_runs
from powrops.reports.display import (
    show_attention,
    show_findings,
    show_steps,
    show_summary,
    show_table,
    show_target,
)
from powrops.reports.html import external_resources, render_html
from powrops.reports.index import build_index
from powrops.reports.record import RUN_DIR_ENV, Recorded, current_run_dir
from powrops.reports.record import record as record_result

if TYPE_CHECKING:
    from powrops.reports.runner import (
        PROJECT_ROOT_ENV,
        ReportSpec,
        RunResult,
        discover,
        ensure_kernel,
        project_root,
        redact,
        run_report,
    )

# The runner needs nbformat and papermill, which are slow to import; a notebook that only
# records its result should not pay for them, so runner names load on first use.
_RUNNER_NAMES = frozenset(
    {
        "PROJECT_ROOT_ENV",
        "ReportSpec",
        "RunResult",
        "discover",
        "ensure_kernel",
        "project_root",
        "redact",
        "run_report",
    }
)


def record(*args: Any, **kwargs: Any) -> Recorded:
    """Record the notebook's result (:func:`powrops.reports.record.record`). Run by hand in
    JupyterLab, the runbook is also archived as evidence, marked interactive."""
    result = record_result(*args, **kwargs)
    if current_run_dir() is None and _session_notebook() is not None:
        _archive_by_hand(result)
    return result


def _session_notebook() -> Path | None:
    """The notebook a JupyterLab kernel runs (Jupyter Server says so), or None."""
    value = os.environ.get("JPY_SESSION_NAME", "")
    return Path(value) if value.endswith(".ipynb") and Path(value).is_file() else None


def _archive_by_hand(result: Recorded) -> None:
    from powrops import config, db
    from powrops.reports.runner import archive_interactive

    notebook = _session_notebook()
    assert notebook is not None
    settings = config.settings()
    try:
        target = db.identity(settings).to_dict()
    except PowropsError:  # the archive matters more than the banner
        target = None
    run_dir = archive_interactive(
        notebook, result, reports_dir=settings.reports_dir, secrets=db.secrets(settings),
        target=target, server=settings.server,
    )  # fmt: skip
    print(f"Archived as evidence (interactive run, the notebook as last saved): {run_dir}")


def __getattr__(name: str) -> Any:
    if name in _RUNNER_NAMES:
        from powrops.reports import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "PROJECT_ROOT_ENV",
    "RUN_DIR_ENV",
    "ReportSpec",
    "RunResult",
    "build_index",
    "current_run_dir",
    "discover",
    "ensure_kernel",
    "external_resources",
    "latest",
    "list_runs",
    "project_root",
    "record",
    "redact",
    "render_html",
    "run_report",
    "show_attention",
    "show_findings",
    "show_steps",
    "show_summary",
    "show_table",
    "show_target",
]
