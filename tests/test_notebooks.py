"""The real notebooks, executed for real against the test cluster (papermill and nbval)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

from powrops.reports.html import external_resources
from powrops.reports.runner import run_report

REPO = Path(__file__).resolve().parents[1]


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _password(url: str) -> str:
    password = urlsplit(_libpq(url)).password
    assert password
    return unquote(password)


def test_readiness_report_run_and_archived(migrated_db: str, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    run = run_report(
        "readiness_report",
        {},
        reports_dir=reports,
        root=REPO,
        timeout=300,
        env={"POWROPS_DATABASE_URL": _libpq(migrated_db)},
        secrets=[_password(migrated_db)],
    )
    result = json.loads((run.path / "result.json").read_text())
    assert result["failed"] is False, result["error"]
    findings = {f["check"]: f["severity"] for f in result["findings"]}
    assert findings["data_checksums"] == "OK"
    assert findings["alembic"] == "OK"
    assert findings["storage.primary"] == "WARNING"
    worst = {"OK": 0, "WARNING": 1, "CRITICAL": 2}
    expected = max(worst[s] for s in findings.values())
    assert result["exit_code"] == run.exit_code == expected
    assert result["figures"]["checks"] == len(findings) >= 18
    assert result["figures"]["server_version"].startswith("18")
    html = (run.path / "report.html").read_text()
    assert external_resources(html) == []
    assert "readiness.run_checks" not in html  # a scheduled report hides its code
    assert "archive_timeout is 900 s" in html
    for name in ("report.html", "notebook.ipynb", "result.json"):
        assert _password(migrated_db) not in (run.path / name).read_text()
    index = (reports / "index.html").read_text()
    assert "readiness_report" in index and f"readiness_report/{run.path.name}/report.html" in index


def test_readiness_report_bad_parameter_is_refused(tmp_path: Path) -> None:
    from powrops.errors import ParameterError

    try:
        run_report("readiness_report", {"no_such": "1"}, reports_dir=tmp_path, root=REPO)
    except ParameterError as exc:
        assert "no_such" in str(exc) and "config_path" in str(exc)
    else:
        raise AssertionError("an unknown parameter was accepted")
    assert not any(tmp_path.iterdir())


def test_notebooks_pass_nbval(migrated_db: str) -> None:
    """Every notebook and runbook executes cleanly under nbval (lax: outputs not compared)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWROPS")}
    env["POWROPS_DATABASE_URL"] = _libpq(migrated_db)
    targets = [str(p) for p in sorted((REPO / "notebooks").glob("*.ipynb"))]
    targets += [str(p) for p in sorted((REPO / "runbooks").glob("*.ipynb"))]
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--nbval-lax",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(REPO),
            "-o",
            "addopts=",
            "-o",
            "testpaths=",
            *targets,
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout
