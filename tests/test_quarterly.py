"""The quarterly review from a prepared archive: known results -> known rates, counts, statuses.

The archive is real: run directories with result.json files as the runner writes them, backup
records in a file:// repository written through the backup catalog, and ``ops`` rows in a
migrated database. The review is gathered from them exactly as the notebook does.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from cli_helpers import libpq, run_cli
from powrops.backup.catalog import Catalog
from powrops.backup.model import BackupRecord
from powrops.config import Settings, load_settings, to_toml, validate
from powrops.errors import ParameterError
from powrops.findings import Severity
from powrops.quarterly import (
    FleetReview,
    Quarter,
    Review,
    fleet,
    gather,
    parse_quarter,
    review,
    server_names,
)
from powrops.reports.runner import run_report
from powrops.storage.registry import open_repository

pytestmark = pytest.mark.pg

REPO = Path(__file__).resolve().parents[1]
Q3 = Quarter(2026, 3)
NOW = datetime(2026, 10, 10, tzinfo=UTC)  # reviewing 2026Q3 after it ended: as_of = 2026-10-01
END = Q3.end


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_parse_quarter() -> None:
    now = datetime(2026, 11, 26, tzinfo=UTC)
    assert parse_quarter("2026Q3", now) == Quarter(2026, 3)
    assert parse_quarter("2026-q1", now) == Quarter(2026, 1)
    assert parse_quarter("", now) == Quarter(2026, 3)  # the last complete quarter
    assert parse_quarter("", datetime(2026, 2, 1, tzinfo=UTC)) == Quarter(2025, 4)
    assert parse_quarter("2026Q4", now).end == datetime(2027, 1, 1, tzinfo=UTC)
    for bad in ("2026Q5", "Q3", "2026", "last"):
        with pytest.raises(ParameterError, match="not a quarter"):
            parse_quarter(bad, now)
    with pytest.raises(ParameterError, match="has not started"):
        parse_quarter("2027Q1", now)


# --- the prepared archive --------------------------------------------------------------------


def _run(reports: Path, name: str, started: str, status: str, **figures: Any) -> str:
    """A run directory as the runner leaves it; returns the report.html path (relative)."""
    run_id = _t(started).strftime("%Y%m%dT%H%M%SZ")
    run_dir = reports / name / run_id
    run_dir.mkdir(parents=True)
    result = {
        "name": name, "run_id": run_id, "started_at": _t(started).isoformat(),
        "finished_at": (_t(started) + timedelta(seconds=30)).isoformat(), "status": status,
        "exit_code": int(Severity[status]), "failed": status == "UNKNOWN", "error": None,
        "findings": [], "figures": figures,
    }  # fmt: skip
    (run_dir / "result.json").write_text(json.dumps(result))
    (run_dir / "report.html").write_text("<html></html>")
    return f"{name}/{run_id}/report.html"


def _backup(repo_url: str, label: str, kind: str, status: str, start: str) -> None:
    record = BackupRecord(
        label=label, kind=kind, status=status, start_time=_t(start),  # type: ignore[arg-type]
        stop_time=_t(start) + timedelta(minutes=2),
        error="pg_basebackup failed: connection lost" if status == "failed" else None,
    )  # fmt: skip
    Catalog(open_repository(repo_url)).write(record)


OPS_ROWS = [
    # drills: the first meets the objectives, the latest misses the RTO (5000 s > 3600 s)
    ("events", "drill", "2026-08-10T03:00", {"rto_s": 120.5, "rpo_s": 4.0, "status": "OK"}),
    ("events", "drill", "2026-09-20T03:00", {"rto_s": 5000.0, "rpo_s": 8.0, "status": "WARNING"}),
    ("events", "drill", "2026-05-01T03:00", {"rto_s": 1.0, "rpo_s": 1.0, "status": "OK"}),  # Q2
    ("events", "maintenance", "2026-09-28T02:00", {"action": "vacuum"}),
    ("events", "maintenance", "2026-09-30T02:00", {"action": "analyze"}),
    ("events", "maintenance", "2026-09-30T22:00", {"action": "analyze", "dry_run": True}),
    ("events", "cleanup", "2026-09-27T04:00", {"deleted": {"sessions": 10}}),
]


def _insert_ops(url: str) -> None:
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        for _, kind, at, details in OPS_ROWS:
            conn.execute(
                "INSERT INTO ops.events (kind, at, details) VALUES (%s, %s, %s)",
                (kind, _t(at), json.dumps(details)),
            )
        # integrity: one failing run with its repair, then clean runs; the latest 2 days old
        failing = conn.execute(
            "INSERT INTO ops.check_runs (kind, status, started_at, counts) VALUES "
            "('integrity', 'CRITICAL', %s, %s) RETURNING id",
            (_t("2026-09-10T01:00"), json.dumps({"orphan_sets": 3, "total_volume": 2})),
        ).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "INSERT INTO ops.repairs (run_id, at, kind, table_name, rows) VALUES "
            "(%s, %s, 'recompute_total_volume', 'workouts', 2), "
            "(%s, %s, 'quarantine_orphans', 'workout_sets', 3)",
            (failing, _t("2026-09-10T01:05"), failing, _t("2026-09-10T01:06")),
        )
        conn.execute(  # the anchor of a repair without a check run: not evidence of a check
            "INSERT INTO ops.check_runs (kind, status, started_at) "
            "VALUES ('integrity', 'UNKNOWN', %s)",
            (_t("2026-09-30T23:00"),),
        )
        for day in ("2026-09-20T01:00", "2026-09-29T01:00"):
            conn.execute(
                "INSERT INTO ops.check_runs (kind, status, started_at, counts) "
                "VALUES ('integrity', 'OK', %s, '{\"orphan_sets\": 0}')",
                (_t(day),),
            )
        alerts = [{"check": "dead_tuples", "severity": "WARNING"},
                  {"check": "disk_usage", "severity": "OK"}]  # fmt: skip
        for day in ("2026-09-29T06:00", "2026-09-30T06:00"):
            conn.execute(
                "INSERT INTO ops.check_runs (kind, status, started_at, findings) "
                "VALUES ('alerts', 'WARNING', %s, %s)",
                (_t(day), json.dumps(alerts)),
            )
        # growth: a baseline before the quarter, then 10 MiB a day
        base = _t("2026-06-30T00:00")
        for days in (0, 15, 46, 77, 90):
            size = 2**30 + days * 10 * 2**20
            # the shape of powrops.metrics.snapshot: nested blocks, the cache hit rate as a ratio
            metrics = {"volume": {"total_size_bytes": size},
                       "performance": {"cache_hit_rate": 0.99 - days / 10000}}  # fmt: skip
            conn.execute(
                "INSERT INTO ops.metric_snapshots (taken_at, metrics) VALUES (%s, %s)",
                (base + timedelta(days=days), json.dumps(metrics)),
            )
        # retention: two users deleted 40 days ago (past 30 days), one 10 days ago (not yet)
        for index, age in enumerate((40, 40, 10)):
            conn.execute(
                "INSERT INTO users (email, deleted_at) "
                "VALUES (%s, now() - make_interval(days => %s))",
                (f"gone{index}@example.invalid", age),
            )


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory, pg_cluster: Any) -> dict[str, Any]:
    """Gathered evidence of 2026Q3 from a prepared archive, backup catalog and ops history."""
    from conftest import _create_database
    from powrops import migrate

    root = tmp_path_factory.mktemp("quarterly")
    url = pg_cluster.url(_create_database(pg_cluster))
    migrate.upgrade(url, "head")
    reports = root / "reports"
    links = {
        "verify_old": _run(reports, "backup_verification", "2026-09-01T05:00", "WARNING",
                           test_restore=False),
        "verify_mid": _run(reports, "backup_verification", "2026-09-15T05:00", "OK",
                           test_restore=True),
        "verify": _run(reports, "backup_verification", "2026-09-30T12:00", "OK",
                       test_restore=True),
        "verify_q2": _run(reports, "backup_verification", "2026-06-15T05:00", "CRITICAL"),
        "integrity": _run(reports, "integrity_report", "2026-09-29T01:10", "OK"),
        "drill": _run(reports, "recovery_drill", "2026-09-20T03:00", "WARNING"),
        "readiness": _run(reports, "readiness_report", "2026-08-01T00:00", "OK"),
        "growth": _run(reports, "growth_report", "2026-09-29T00:00", "OK"),
    }  # fmt: skip
    repo_url = (root / "repo").as_uri()
    backups = [("20260901T000000F", "full", "ok"), ("20260902T000000F", "full", "ok"),
               ("20260903T000000F", "full", "failed"), ("20260904T000000F", "full", "failed"),
               ("20260905T000000F", "full", "ok"), ("20260930T000000F", "full", "ok"),
               ("20260930T010000I", "incremental", "ok"), ("20260930T020000I", "incremental", "ok"),
               ("20260615T000000F", "full", "failed")]  # fmt: skip
    for label, kind, status in backups:
        _backup(repo_url, label, kind, status, label[:4] + "-" + label[4:6] + "-" + label[6:8]
                + "T" + label[9:11] + ":00")  # fmt: skip
    _insert_ops(url)
    data = {
        "database": {"url": libpq(url)},
        "reports": {"dir": str(reports)},
        "state": {"dir": str(root / "state")},
        "backup": {"storage": {"primary": {"kind": "file", "url": repo_url}}},
    }
    config = root / "powrops.toml"
    config.write_text(to_toml(data))
    settings = validate(data)
    evidence = gather(settings, Q3, now=NOW)
    return {
        "evidence": evidence,
        "review": review(evidence),
        "links": links,
        "config": config,
        "url": url,
        "repo_url": repo_url,
    }


def _items(rev: Review) -> dict[str, Any]:
    return {i.item: i for i in rev.items}


def test_sections_show_the_right_rates_and_counts(prepared: dict[str, Any]) -> None:
    rev: Review = prepared["review"]
    assert rev.problems == []
    backups = rev.sections["backups"]
    assert backups.headline == {"backup_runs": 8, "backup_success_pct": 75.0, "backup_failures": 2}
    assert backups.status == Severity.CRITICAL  # two failed in a row: the strategy's critical
    assert [r["label"] for r in backups.rows] == ["20260903T000000F", "20260904T000000F"]
    verification = rev.sections["verification"]
    assert verification.headline == {"verifications": 3, "test_restores_ok": 2}  # Q2 run ignored
    assert verification.status == Severity.WARNING  # one test restore of three failed
    drills = rev.sections["drills"]
    assert drills.headline["drills"] == 2 and drills.headline["last_rto_s"] == 5000.0
    assert [r["objectives_met"] for r in drills.rows] == [True, False]
    assert drills.status == Severity.WARNING
    integrity = rev.sections["integrity"]
    assert integrity.headline == {
        "integrity_runs": 3, "integrity_failures": 1, "failed_checks": 0, "repairs": 2
    }  # fmt: skip
    assert integrity.status == Severity.OK  # the latest run is clean
    growth = rev.sections["growth"]
    assert growth.headline["growth_bytes_per_day"] == pytest.approx(10 * 2**20, rel=1e-6)
    assert growth.headline["size_bytes"] == 2**30 + 90 * 10 * 2**20
    # forecast: linear to the end of 2026Q4, 185 days after the 2026-06-30 baseline
    expected = 2**30 + 185 * 10 * 2**20
    assert growth.headline["forecast_bytes"] == pytest.approx(expected, rel=1e-6)
    retention = {r["policy"]: r["rows past retention"] for r in rev.sections["retention"].rows}
    assert retention["user_account.deleted"] == 2
    assert rev.sections["retention"].status == Severity.CRITICAL
    alerts = rev.sections["alerts"]
    assert alerts.rows == [{"alert": "dead_tuples", "severity": "WARNING", "times raised": 2}]
    assert rev.sections["maintenance"].headline == {"maintenance_runs": 3}
    performance = rev.sections["performance"]
    assert len(performance.rows) == 4  # snapshots inside the quarter
    assert performance.rows[-1]["cache_hit_pct"] == pytest.approx(98.1)


def test_checklist_statuses_and_links(prepared: dict[str, Any]) -> None:
    items = _items(prepared["review"])
    links = prepared["links"]
    assert len(items) == 12
    verify = items["Review backup success"]
    assert (verify.status, verify.link) == (Severity.OK, links["verify"])
    integrity = items["Check data integrity"]
    assert integrity.status == Severity.WARNING  # latest evidence 2 days old, schedule daily
    assert integrity.link == links["integrity"]
    assert items["Update statistics"].status == Severity.OK  # analyze event 1 day before as_of
    no_analyze = dataclasses.replace(
        prepared["evidence"], events=[e for e in prepared["evidence"].events
                                      if e.details.get("action") != "analyze"],
    )  # fmt: skip
    # the table statistics of today are not evidence for a quarter that ended before
    assert _items(review(no_analyze))["Update statistics"].status == Severity.CRITICAL
    drill = items["Test recovery procedures"]
    assert (drill.status, drill.link) == (Severity.WARNING, links["drill"])  # RTO missed
    assert items["Create maintenance scripts"].status == Severity.OK
    assert items["Set up monitoring"].status == Severity.WARNING  # the alerts found a warning
    assert items["Review performance metrics"].link == links["growth"]
    assert items["Review performance metrics"].status == Severity.OK
    # rows of deleted users kept past 30 days: the retention audit is red
    assert items["Audit retention policies"].status == Severity.CRITICAL
    assert "user_account.deleted: 2 rows" in items["Audit retention policies"].evidence
    # readiness ran on 2026-08-01: within the quarter and its 91-day interval
    assert items["Update documentation"].status == Severity.OK


def test_the_reviews_own_retention_audit_is_dated_after_the_quarter(
    prepared: dict[str, Any],
) -> None:
    """The rows past retention are counted by the review itself, today: never shown as read
    before the end of a quarter that ended earlier."""
    rev: Review = prepared["review"]
    audited = prepared["evidence"].retention_audited_at
    assert audited is not None and audited > rev.as_of
    evidence = _items(rev)["Audit retention policies"].evidence
    assert f"days after {rev.as_of:%Y-%m-%d}, read by this review" in evidence, evidence
    assert "days before" not in evidence, evidence


def test_missing_or_old_evidence_is_red(prepared: dict[str, Any]) -> None:
    ev = prepared["evidence"]
    # the same archive reviewed a week into the next quarter's end: everything daily is stale
    late = dataclasses.replace(ev, quarter=Quarter(2026, 4), now=datetime(2026, 10, 5, tzinfo=UTC))
    items = _items(review(late))
    assert items["Review backup success"].status == Severity.CRITICAL
    assert "none in the quarter" in items["Review backup success"].evidence
    assert ev.as_of == END  # the quarter ended: freshness is measured at its end
    # reviewed as the current quarter on 2026-09-28: the newest verification then is 13 days
    # old (the later ones do not exist yet), far past twice the daily schedule
    current = dataclasses.replace(ev, now=datetime(2026, 9, 28, tzinfo=UTC))
    items = _items(review(current))
    assert items["Review backup success"].status == Severity.CRITICAL
    assert items["Review backup success"].link == prepared["links"]["verify_mid"]
    assert "older than 1 days" in items["Review backup success"].evidence
    without_integrity = dataclasses.replace(
        ev, runs=[r for r in ev.runs if r.name != "integrity_report"],
        check_runs=[c for c in ev.check_runs if c.kind != "integrity"],
    )  # fmt: skip
    item = _items(review(without_integrity))["Check data integrity"]
    assert item.status == Severity.CRITICAL and item.link is None
    old_drills = dataclasses.replace(
        ev, events=[e for e in ev.events if not (e.kind == "drill" and e.at.month == 9)],
        runs=[r for r in ev.runs if r.name != "recovery_drill"],
    )  # fmt: skip
    drill = _items(review(old_drills))["Test recovery procedures"]
    assert drill.status == Severity.WARNING  # the drill left is 52 days old: one month missed
    assert "older than 30 days" in drill.evidence
    assert review(old_drills).sections["drills"].status == Severity.OK  # it met the objectives
    no_drills = dataclasses.replace(old_drills, events=[e for e in ev.events if e.kind != "drill"])
    drill = _items(review(no_drills))["Test recovery procedures"]
    assert drill.status == Severity.CRITICAL and "evidence missing" in drill.evidence
    assert review(no_drills).sections["drills"].status == Severity.CRITICAL


def test_findings_and_figures_for_the_index(prepared: dict[str, Any]) -> None:
    rev: Review = prepared["review"]
    findings = {f.check: f for f in rev.findings()}
    assert findings["checklist.review_backup_success"].severity == Severity.OK
    assert findings["checklist.review_backup_success"].object == prepared["links"]["verify"]
    assert findings["section.backups"].severity == Severity.CRITICAL
    assert rev.status == Severity.CRITICAL
    figures = rev.figures()
    assert figures["quarter"] == "2026Q3"
    assert figures["checklist_critical"] == sum(i.status == Severity.CRITICAL for i in rev.items)
    assert figures["backup_success_pct"] == 75.0


def test_unreadable_evidence_is_reported_not_fatal(tmp_path: Path) -> None:
    settings: Settings = validate(
        {
            "database": {"url": "postgresql://nobody:pw-hunter2x@127.0.0.1:1/none"},
            "reports": {"dir": str(tmp_path / "reports")},
            "backup": {"storage": {"primary": {"kind": "s3", "url": "s3://no-such-bucket/x",
                                               "endpoint_url": "http://127.0.0.1:1"}}},
        }
    )  # fmt: skip
    rev = review(gather(settings, Q3, now=NOW))
    assert any("ops history unreadable" in p for p in rev.problems)
    assert any("backup catalog unreadable" in p for p in rev.problems)
    assert all("pw-hunter2x" not in p for p in rev.problems)
    assert _items(rev)["Audit retention policies"].status == Severity.CRITICAL
    assert rev.status == Severity.CRITICAL


def test_the_notebook_renders_the_same_review(prepared: dict[str, Any], tmp_path: Path) -> None:
    """The scheduled notebook on the prepared archive: same figures, links that resolve."""
    config = str(prepared["config"])
    archive = Path(tomllib.loads(prepared["config"].read_text())["reports"]["dir"])
    run = run_report("quarterly_review", {"config_path": config, "quarter": "2026Q3"},
                     reports_dir=archive, root=REPO, timeout=300)  # fmt: skip
    assert run.result["failed"] is False, run.result["error"]
    assert run.result["figures"] == prepared["review"].figures()
    assert run.exit_code == int(Severity.CRITICAL)
    html = (run.path / "report.html").read_text()
    link = f"../../{prepared['links']['verify']}"
    assert f'href="{link}"' in html and (run.path / link).resolve().is_file()
    assert "parse_quarter" not in html  # a scheduled report hides its code


def test_the_notebook_refuses_a_bad_quarter(tmp_path: Path) -> None:
    run = run_report("quarterly_review", {"quarter": "2026Q9"}, reports_dir=tmp_path,
                     root=REPO, timeout=120)  # fmt: skip
    assert run.exit_code == 3 and run.result["failed"] is True
    assert run.result["error"]["ename"] == "ParameterError"
    assert "2026Q9" in run.result["error"]["evalue"]


# --- the fleet: a section per server and a fleet summary -------------------------------------


@pytest.fixture(scope="module")
def fleet_site(prepared: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Two servers sharing the prepared database: alpha with a verified quarter and backups,
    beta with one failed verification before it and an empty repository."""
    root = tmp_path_factory.mktemp("fleet-quarterly")
    reports = root / "reports"
    links = {
        "alpha": "alpha/" + _run(reports / "alpha", "backup_verification", "2026-09-30T12:00",
                                 "OK", test_restore=True),
        "beta": "beta/" + _run(reports / "beta", "backup_verification", "2026-06-15T05:00",
                               "CRITICAL"),
    }  # fmt: skip
    (root / "empty-repo").mkdir()
    with psycopg.connect(libpq(prepared["url"]), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO ops.check_runs (kind, status, started_at, counts, server) "
            "VALUES ('integrity', 'OK', %s, '{}', 'alpha')",
            (_t("2026-09-30T01:00"),),
        )
    primary = {"kind": "file", "url": prepared["repo_url"]}
    data = {
        "reports": {"dir": str(reports)},
        "state": {"dir": str(root / "state")},
        "servers": {
            "alpha": {"database": {"url": libpq(prepared["url"])},
                      "backup": {"storage": {"primary": primary}}},
            "beta": {"database": {"url": libpq(prepared["url"])},
                     "backup": {"storage": {"primary": {
                         "kind": "file", "url": (root / "empty-repo").as_uri()}}}},
        },
    }  # fmt: skip
    config = root / "powrops.toml"
    config.write_text(to_toml(data))
    settings = load_settings(config, environ={}, server="alpha")
    return {"settings": settings, "config": config, "reports": reports, "links": links}


def test_a_fleet_review_has_a_review_per_server_and_a_summary(fleet_site: Any) -> None:
    settings = fleet_site["settings"]
    assert server_names(settings, "") == ["alpha"]
    assert server_names(settings, "beta, alpha") == ["beta", "alpha"]
    with pytest.raises(ParameterError, match=r"gamma.*alpha, beta"):
        server_names(settings, "alpha,gamma")
    fl = fleet(settings, Q3, "all", now=NOW)
    assert isinstance(fl, FleetReview) and list(fl.reviews) == ["alpha", "beta"]
    alpha, beta = fl.reviews["alpha"], fl.reviews["beta"]
    assert (alpha.server, beta.server) == ("alpha", "beta")
    verify = _items(alpha)["Review backup success"]
    assert (verify.status, verify.link) == (Severity.OK, fleet_site["links"]["alpha"])
    assert _items(beta)["Review backup success"].status == Severity.CRITICAL
    # each reads its own ops rows: alpha's one integrity run, none of the default server's
    assert alpha.sections["integrity"].headline.get("integrity_runs") == 1
    assert alpha.sections["integrity"].headline.get("repairs") == 0  # the default server's
    assert beta.sections["integrity"].status == Severity.CRITICAL
    rows = fl.summary_rows()
    assert [(r["server"], r["status"]) for r in rows] == [
        ("alpha", alpha.status.name),
        ("beta", beta.status.name),
    ]
    assert rows[1]["checklist CRITICAL"] > rows[0]["checklist CRITICAL"]
    assert fl.status == Severity.CRITICAL
    found = fl.findings()
    assert {f.check.split(".")[0] for f in found} == {"alpha", "beta"}
    assert len(found) == len(alpha.findings()) + len(beta.findings())
    figures = fl.figures()
    assert figures["servers"] == 2 and figures["servers_critical"] >= 1
    assert figures["beta.checklist_critical"] == beta.figures()["checklist_critical"]
    assert figures["alpha.checklist_ok"] == alpha.figures()["checklist_ok"] > 0


def test_the_notebook_reviews_the_fleet(fleet_site: Any) -> None:
    """``-p servers all``: the fleet summary, each server's sections, links that resolve."""
    reports = fleet_site["reports"]
    params = {"config_path": str(fleet_site["config"]), "quarter": "2026Q3", "servers": "all"}
    run = run_report("quarterly_review", params, reports_dir=reports, root=REPO, timeout=300,
                     server="alpha")  # fmt: skip
    assert run.result["failed"] is False, run.result["error"]
    assert run.path.parent == reports / "alpha" / "quarterly_review"
    assert run.result["figures"]["servers"] == 2
    assert run.result["figures"]["alpha.checklist_ok"] > 0
    assert run.exit_code == int(Severity.CRITICAL)
    assert {f["details"]["server"] for f in run.result["findings"]} == {"alpha", "beta"}
    html = (run.path / "report.html").read_text()
    assert "The fleet at a glance" in html
    assert "Server alpha" in html and "Server beta" in html
    link = f"../../../{fleet_site['links']['alpha']}"
    assert f'href="{link}"' in html and (run.path / link).resolve().is_file()


def test_report_run_refuses_servers_not_configured_before_the_run(fleet_site: Any) -> None:
    """``-p servers alpha,gamma`` is refused by ``report run`` in one line naming the unknown
    server, before a kernel starts and with no run folder (it failed in the review's cell)."""
    runs = fleet_site["reports"] / "alpha" / "quarterly_review"
    before = sorted(runs.iterdir()) if runs.exists() else []
    done = run_cli("-c", str(fleet_site["config"]), "--server", "alpha", "report", "run",
                   "quarterly_review", "-p", "servers", "alpha,gamma")  # fmt: skip
    assert done.returncode == 3, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("powrops: error:")]
    assert len(errors) == 1 and "unknown server 'gamma'" in errors[0], done.stderr
    assert (sorted(runs.iterdir()) if runs.exists() else []) == before
