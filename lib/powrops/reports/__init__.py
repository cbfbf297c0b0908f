"""Reports: papermill runs into an archive of self-contained HTML, and notebook helpers.

Notebooks call :func:`record` (:mod:`.record`) and the ``show_*`` helpers (:mod:`.display`);
the CLI and schedulers call :func:`powrops.reports.runner.run_report`; the archive index is
rebuilt by :func:`build_index` from the catalog. This file hands names on; the runner, which
loads nbformat and papermill, is imported from :mod:`.runner` by what runs reports.

:mod:`.iri_grammar` is imported first, for what its import does: jsonschema, which every
reader of a notebook loads through nbformat, no longer compiles an IRI grammar on import.
"""

from __future__ import annotations

from powrops.reports import iri_grammar  # noqa: F401  (first: before nbformat is loaded)
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
from powrops.reports.record import RUN_DIR_ENV, current_run_dir, record

__all__ = [
    "RUN_DIR_ENV",
    "build_index",
    "current_run_dir",
    "external_resources",
    "latest",
    "list_runs",
    "record",
    "render_html",
    "show_attention",
    "show_findings",
    "show_steps",
    "show_summary",
    "show_table",
    "show_target",
]
