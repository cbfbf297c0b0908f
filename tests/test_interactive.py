"""A runbook run by hand in JupyterLab is archived as evidence, like a scheduled run.

Jupyter Server tells a kernel which notebook it runs (``JPY_SESSION_NAME``); when such a kernel
records its result outside a papermill run, the notebook as last saved is archived under
``<reports>/<name>/<timestamp>-interactive/`` and ``result.json`` says so.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from powrops.findings import Finding, Severity
from powrops.reports import RUN_DIR_ENV, record

REPO = Path(__file__).resolve().parents[1]


def test_a_runbook_run_by_hand_is_archived_marked_interactive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    notebook = tmp_path / "point_in_time_restore.ipynb"
    shutil.copy(REPO / "runbooks" / "point_in_time_restore.ipynb", notebook)
    config = tmp_path / "powrops.toml"
    config.write_text(
        f'[state]\ndir = "{tmp_path / "state"}"\n[reports]\ndir = "{tmp_path / "r"}"\n'
    )
    monkeypatch.setenv("POWROPS_CONFIG", str(config))
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    monkeypatch.setenv("JPY_SESSION_NAME", str(notebook))
    result = record(findings=[Finding("restore", Severity.WARNING, "by hand")])
    assert result["status"] == "WARNING"
    [run] = (tmp_path / "r" / "point_in_time_restore").glob("*-interactive")
    data = json.loads((run / "result.json").read_text())
    assert data["interactive"] is True and data["status"] == "WARNING"
    assert data["findings"][0]["message"] == "by hand"
    assert "gate.confirm" in (run / "notebook.ipynb").read_text()
    page = (run / "report.html").read_text()
    assert "highlight" in page and "point_in_time_restore" in page  # a runbook's code is shown
    assert "point_in_time_restore" in (tmp_path / "r" / "index.html").read_text()
    assert "Archived as evidence" in capsys.readouterr().out


def test_outside_jupyterlab_nothing_is_archived(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "powrops.toml"
    config.write_text(f'[reports]\ndir = "{tmp_path / "r"}"\n')
    monkeypatch.setenv("POWROPS_CONFIG", str(config))
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    record(findings=[])
    assert not (tmp_path / "r").exists()
