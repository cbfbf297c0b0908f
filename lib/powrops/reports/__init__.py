"""Reports: papermill runs into an archive of self-contained HTML, and notebook helpers.

Notebooks call :func:`record` and the ``show_*`` helpers; the CLI and schedulers call
:func:`run_report`; the archive index is rebuilt by :func:`build_index` from the catalog.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from powrops.reports.catalog import latest, list_runs
from powrops.reports.display import show_findings, show_summary, show_table, show_target
from powrops.reports.html import external_resources, render_html
from powrops.reports.index import build_index
from powrops.reports.record import RUN_DIR_ENV, current_run_dir, record

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
    "show_findings",
    "show_summary",
    "show_table",
    "show_target",
]
