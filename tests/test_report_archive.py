"""The remote report archive over real S3 (moto_server): copy, retention, index from the archive."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nbformat
import pytest

from powrops.config import Settings, load_settings, to_toml
from powrops.durations import Duration
from powrops.reports.remote import ReportArchive, expired_runs
from powrops.reports.runner import run_report

pytestmark = pytest.mark.pg

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
BUCKET = "powrops-report-archive"


def _stamp(days_ago: float) -> str:
    return (NOW - timedelta(days=days_ago)).strftime("%Y%m%dT%H%M%SZ")


def test_expired_runs_keep_the_newest_of_each_report() -> None:
    runs = [f"a/{_stamp(60)}", f"a/{_stamp(31)}", f"a/{_stamp(29)}", f"b/{_stamp(90)}",
            "c/not-a-timestamp", f"d/{_stamp(100)}-2", f"d/{_stamp(99)}"]  # fmt: skip
    assert expired_runs(runs, Duration.parse("30d"), NOW) == sorted(
        [f"a/{_stamp(60)}", f"a/{_stamp(31)}", f"d/{_stamp(100)}-2"]
    )
    assert expired_runs(runs, Duration.parse("indefinite"), NOW) == []


def _run_dir(reports: Path, name: str, days_ago: float, *, finished: bool = True) -> str:
    run_id = _stamp(days_ago)
    run = reports / name / run_id
    run.mkdir(parents=True)
    started = (NOW - timedelta(days=days_ago)).isoformat()
    result: dict[str, Any] = {"name": name, "run_id": run_id, "status": "OK", "started_at": started,
                              "figures": {"marker": f"{name}-{run_id}"}}  # fmt: skip
    if finished:
        result["finished_at"] = started
    (run / "result.json").write_text(json.dumps(result))
    (run / "report.html").write_text(f"<html><body>{name} {run_id}</body></html>")
    (run / "notebook.ipynb").write_text("{}")
    return f"{name}/{run_id}"


def test_a_silent_archive_holds_a_finished_run_seconds_not_minutes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The copy after a run gives up on an object store that accepts and stays silent after
    one try of ``AFTER_RUN_SILENCE`` (15 s; ``report sync`` copies later), not four tries of
    60 s. The test shortens the silence to 2 s: one try, within it, is what it checks."""
    from powrops.reports import remote
    from powrops.storage.s3 import S3Options, S3Repository
    from s3server import S3Server, Silent

    assert remote.AFTER_RUN_SILENCE <= 15
    monkeypatch.setattr(remote, "AFTER_RUN_SILENCE", 2.0)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIA-REPORTS-TEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "reports-test-secret")
    silent = Silent()
    try:
        options = S3Options(endpoint_url=silent.endpoint_url, region=S3Server.REGION)
        archive = ReportArchive(tmp_path, S3Repository(BUCKET, "runs", options),
                                Duration.parse("indefinite"))  # fmt: skip
        run = _run_dir(tmp_path, "integrity_report", 0)
        start = datetime.now(UTC)
        archive.after_run(tmp_path / run)
        took = (datetime.now(UTC) - start).total_seconds()
    finally:
        silent.close()
    err = capsys.readouterr().err
    assert 1.9 <= took < 10 and silent.accepted == 1, (took, silent.accepted, err)
    assert err.startswith("powrops: warning: report archive s3://") and "did not answer" in err
    assert "reports-test-secret" not in err and "AKIA-REPORTS-TEST" not in err


@pytest.fixture
def site(s3_server: Any, tmp_path: Path) -> dict[str, Any]:
    from s3server import S3Server

    s3_server.create_bucket(BUCKET)
    prefix = f"reports-{uuid.uuid4().hex[:8]}"
    data = {
        "state": {"dir": str(tmp_path / "state")},
        "reports": {
            "dir": str(tmp_path / "reports"),
            "archive_url": f"s3://{BUCKET}/{prefix}",
            "retention": "30d",
            "archive_storage": {"kind": "s3", "endpoint_url": s3_server.endpoint_url,
                                "region": S3Server.REGION, **S3Server.CREDENTIALS},
        },
    }  # fmt: skip
    config = tmp_path / "powrops.toml"
    config.write_text(to_toml(data))
    return {"config": config, "prefix": prefix, "client": s3_server.client(), "root": tmp_path}


def _settings(site: dict[str, Any]) -> Settings:
    return load_settings(site["config"], environ={})


def _remote_keys(site: dict[str, Any]) -> set[str]:
    pages = (
        site["client"]
        .get_paginator("list_objects_v2")
        .paginate(Bucket=BUCKET, Prefix=site["prefix"] + "/")
    )
    start = len(site["prefix"]) + 1
    return {o["Key"][start:] for page in pages for o in page.get("Contents", [])}


def test_sync_copies_applies_retention_and_the_index_rebuilds_from_the_archive(
    site: dict[str, Any], tmp_path: Path
) -> None:
    settings = _settings(site)
    reports = settings.reports_dir
    old = _run_dir(reports, "backup_verification", 45)
    kept = _run_dir(reports, "backup_verification", 2)
    only = _run_dir(reports, "recovery_drill", 90)  # older than 30 days, but the only drill
    running = _run_dir(reports, "readiness_report", 0.1, finished=False)
    archive = ReportArchive.from_settings(settings)
    result = archive.sync(now=NOW)
    assert sorted(result.uploaded) == sorted([old, kept, only])
    assert result.skipped == [running]
    assert result.expired_remote == [old] and result.expired_local == [old]
    assert not (reports / old).exists() and (reports / kept / "report.html").exists()
    remote = _remote_keys(site)
    for run in (kept, only):
        assert {f"{run}/report.html", f"{run}/result.json", f"{run}/notebook.ipynb"} <= remote
    assert not any(k.startswith(old) for k in remote)
    assert not any(k.startswith(running) for k in remote)  # unfinished runs stay local
    assert {"index.html", "catalog.json"} <= remote
    # a second sync finds nothing to do
    again = archive.sync(now=NOW)
    assert (again.uploaded, again.expired_remote, again.expired_local) == ([], [], [])

    # the reports directory is lost: the index comes back from the archive alone
    fresh = tmp_path / "rebuilt"
    index, pulled = archive.rebuild_from_archive(fresh)
    assert sorted(pulled.downloaded) == sorted([kept, only])
    page = index.read_text()
    for run in (kept, only):
        assert f'href="{run}/report.html"' in page
        assert (fresh / run / "report.html").read_bytes() == (
            reports / run / "report.html"
        ).read_bytes()
    assert old not in page and running not in page
    catalog = json.loads((fresh / "catalog.json").read_text())
    assert sorted(f"{r['name']}/{r['run_id']}" for r in catalog["runs"]) == sorted([kept, only])


def test_cli_sync_and_index_from_archive(site: dict[str, Any], tmp_path: Path) -> None:
    reports = _settings(site).reports_dir
    recent = _run_dir(reports, "backup_verification", 0.5)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "powrops.cli", "--config", str(site["config"]), *args],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    dry = cli("report", "sync", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout)["uploaded"] == [recent]
    assert _remote_keys(site) == set()  # a dry run writes nothing
    done = cli("report", "sync")
    assert done.returncode == 0, done.stderr
    assert f"upload  {recent}" in done.stdout
    assert f"{recent}/result.json" in _remote_keys(site)
    rebuilt = tmp_path / "from-archive"
    proc = cli("report", "index", "--from-archive", "--to", str(rebuilt))
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()) == rebuilt / "index.html"
    assert f"{recent}/report.html" in (rebuilt / "index.html").read_text()
    assert "1 runs downloaded" in proc.stderr
    # no archive configured: --from-archive is refused with exit 3 and a clear message
    bare = tmp_path / "bare.toml"
    bare.write_text(to_toml({"reports": {"dir": str(tmp_path / "r")}}))
    refused = subprocess.run(
        [sys.executable, "-m", "powrops.cli", "--config", str(bare), "report", "index",
         "--from-archive"], capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert refused.returncode == 3 and "reports.archive_url" in refused.stderr


def _tiny_project(root: Path) -> Path:
    nb = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Tiny report"),  # type: ignore[no-untyped-call]
        nbformat.v4.new_code_cell('note = "x"', metadata={"tags": ["parameters"]}),  # type: ignore[no-untyped-call]
        nbformat.v4.new_code_cell(  # type: ignore[no-untyped-call]
            "from powrops.reports import record\nrecord(status='OK', figures={'note': note})"
        ),
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    (root / "notebooks").mkdir(parents=True)
    nbformat.write(nb, str(root / "notebooks" / "tiny.ipynb"))  # type: ignore[no-untyped-call]
    return root


def test_a_report_run_is_copied_to_the_archive(site: dict[str, Any], tmp_path: Path) -> None:
    settings = _settings(site)
    project = _tiny_project(tmp_path / "project")
    archive = ReportArchive.from_settings(settings)
    run = run_report("tiny", {"note": "hello"}, reports_dir=settings.reports_dir, root=project,
                     timeout=120, remote=archive)  # fmt: skip
    assert run.result["status"] == "OK", run.result["error"]
    key = f"tiny/{run.path.name}"
    remote = _remote_keys(site)
    assert {f"{key}/result.json", f"{key}/report.html", f"{key}/notebook.ipynb"} <= remote
    assert "index.html" in remote
    body = site["client"].get_object(Bucket=BUCKET, Key=f"{site['prefix']}/{key}/result.json")
    assert json.loads(body["Body"].read())["figures"] == {"note": "hello"}
