"""What a notebook calls to record its result: :func:`record`. Run by hand in JupyterLab, the
runbook is archived as evidence too, marked interactive (the report runner, which that needs,
loads only then)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from powrops import config, db
from powrops.errors import PowropsError
from powrops.reports.record import Recorded, current_run_dir
from powrops.reports.record import record as record_result


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
