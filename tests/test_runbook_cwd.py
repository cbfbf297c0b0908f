"""A notebook whose kernel runs in ``runbooks/`` (JupyterLab's working directory) acts on the
project's database and creates nothing; without a configured database it stops, saying how.

Before, the first cell that connected ran initdb and worked on a new, empty cluster under
``runbooks/.powrops/``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import papermill
import pytest

from cli_helpers import libpq
from powrops.reports.kernel import ensure_kernel

pytestmark = pytest.mark.pg

REPO = Path(__file__).resolve().parents[1]


def _project(root: Path, config: str | None) -> Path:
    (root / "runbooks").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "powrops"\n')
    if config is not None:
        (root / "powrops.toml").write_text(config)
    return root


def _run_in_runbooks(root: Path, out: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWROPS")}
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        papermill.execute_notebook(
            str(REPO / "notebooks" / "readiness_report.ipynb"), str(out),
            kernel_name=ensure_kernel(), progress_bar=False, cwd=str(root / "runbooks"),
        )  # fmt: skip
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_the_kernel_in_runbooks_finds_the_projects_database(
    migrated_db: str, tmp_path: Path
) -> None:
    url = libpq(migrated_db)
    root = _project(tmp_path / "clone", f'[database]\nurl = "{url}"\n')
    out = tmp_path / "out.ipynb"
    _run_in_runbooks(root, out)
    text = out.read_text()
    assert f"Acting on <b>{url.rsplit('/', 1)[1]}</b>" in text
    assert not (root / "runbooks" / ".powrops").exists() and not (root / ".powrops").exists()


def test_no_database_stops_the_notebook_and_creates_nothing(tmp_path: Path) -> None:
    root = _project(tmp_path / "clone", None)
    with pytest.raises(papermill.PapermillExecutionError, match="no database configured"):
        _run_in_runbooks(root, tmp_path / "out.ipynb")
    assert not (root / "runbooks" / ".powrops").exists()
    assert not (root / ".powrops" / "cluster").exists()
    shutil.rmtree(root, ignore_errors=True)
