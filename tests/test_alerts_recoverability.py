"""Verified recoverability as metrics: what ``powrops alerts --textfile`` exports from the
recorded evidence (the drill in ``ops.events``, the archived ``backup_verification`` run, the
repository's verification state), and that a figure without evidence is not exported.

The end-to-end test runs the real verification report (with its test restore) and the real
drill on a small site, then compares the textfile with what those runs recorded, read here
from their own records."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from backup_site import Site
from powrops.alerts import openmetrics_view, recoverability
from powrops.backup import repos
from powrops.findings import Severity
from powrops.verify import BackupRow, RecoveryWindow, VerificationReport
from powrops.verify.runner import recovery_windows
from powrops.verify.state import STATE_KEY, ObjectRead, VerificationState

T0 = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)

#: Every metric of recorded evidence (the objectives come from the configuration).
EVIDENCE = {
    "powrops_drill_last_run_timestamp_seconds",
    "powrops_drill_rto_seconds",
    "powrops_drill_rpo_seconds",
    "powrops_restore_last_success_timestamp_seconds",
    "powrops_restore_last_success_age_seconds",
    "powrops_recovery_window_end_timestamp_seconds",
    "powrops_verification_last_read_timestamp_seconds",
    "powrops_verification_read_objects",
    "powrops_verification_read_bytes",
}


def _samples(text: str) -> dict[str, tuple[dict[str, str], float]]:
    """The samples of metrics with one series (every recoverability metric), by name."""
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), float(sample.value)))
    return {name: series[0] for name, series in found.items() if len(series) == 1}


def _values(text: str) -> dict[str, float]:
    return {name: value for name, (_, value) in _samples(text).items()}


# --- what the records say (no database) ------------------------------------------------------


def _drill(at: datetime, rto: float | None, rpo: float | None, ok: bool = True) -> Any:
    checks = {"data_integrity": {"ok": ok}, "application_state": {"ok": True},
              "user_access": {"ok": True}}  # fmt: skip
    return at, {"drill_id": f"d{at:%H%M}", "rto_s": rto, "rpo_s": rpo, "verification": checks}


def _run(run_id: str, finished: datetime | None, **figures: Any) -> dict[str, Any]:
    run: dict[str, Any] = {"run_id": run_id, "failed": False, "figures": figures}
    if finished is None:  # killed: the catalog lists it incomplete
        run.update(failed=True, incomplete=True)
    else:
        run["finished_at"] = finished.isoformat()
    return run


def _from(drills: list[Any], runs: list[dict[str, Any]]) -> recoverability.Recoverability:
    return recoverability.from_records(recoverability.Recoverability(3600, 900), drills, runs)


def test_the_last_drill_and_the_newest_successful_restore_are_what_is_exported() -> None:
    hour = timedelta(hours=1)
    drills = [
        _drill(T0, None, None),  # the last drill failed before the restored server answered
        _drill(T0 - 3 * hour, 40.0, 2.0, ok=False),  # restored, but a verification failed
        _drill(T0 - 9 * hour, 30.0, 1.5),  # the last drill that restored and verified
    ]
    runs = [
        _run("r4", None, test_restore=True, recovery_window_end=T0.isoformat()),
        _run("r3", T0 - 2 * hour, test_restore=False,
             recovery_window_end=(T0 - 5 * hour).isoformat()),
        _run("r2", T0 - 7 * hour, test_restore=True, recovery_window_end=T0.isoformat()),
        _run("r1", T0 - 8 * hour, test_restore=True),
    ]  # fmt: skip
    found = _from(drills, runs)
    assert (found.drill_at, found.drill_rto_s, found.drill_rpo_s) == (T0, None, None)
    assert (found.restored_at, found.restored_by) == (T0 - 7 * hour, "verification r2")
    assert found.window_end == T0 - 5 * hour  # the last finished verification's, not r4's
    older = _from(drills, runs[3:])
    assert (older.restored_at, older.restored_by) == (T0 - 8 * hour, "verification r1")
    assert older.window_end is None  # r1 recorded no window: no evidence, no figure
    failed = _from(drills, runs[1:2])
    assert (failed.restored_at, failed.restored_by) == (T0 - 9 * hour, "drill d2100")

    text = openmetrics_view.render([], Severity.OK, T0.timestamp(),
                                   {"recoverability": found.to_dict()}, server="prod")  # fmt: skip
    values = _values(text)
    assert "powrops_drill_rto_seconds" not in values and "powrops_drill_rpo_seconds" not in values
    assert values["powrops_drill_last_run_timestamp_seconds"] == T0.timestamp()
    assert values["powrops_restore_last_success_age_seconds"] == 7 * 3600
    assert values["powrops_recovery_window_end_timestamp_seconds"] == (T0 - 5 * hour).timestamp()
    assert all(labels == {"server": "prod"} for labels, _ in _samples(text).values())


def test_without_evidence_only_the_objectives_are_exported() -> None:
    nothing = recoverability.from_records(recoverability.Recoverability(7200, 300), [], [])
    assert nothing.last_read is None
    figures = {"recoverability": nothing.to_dict()}
    text = openmetrics_view.render([], Severity.OK, T0.timestamp(), figures, server="default")
    values = _values(text)
    assert not EVIDENCE & values.keys(), EVIDENCE & values.keys()
    assert values["powrops_recovery_rto_objective_seconds"] == 7200
    assert values["powrops_recovery_rpo_objective_seconds"] == 300


def test_the_last_read_is_the_objects_of_the_newest_read_time() -> None:
    state = VerificationState({
        "backups/A/data.tar.zst": ObjectRead(1000, "x", T0 - timedelta(days=1)),
        "wal/1": ObjectRead(30, "y", T0),
        "wal/2": ObjectRead(12, "z", T0),
    })  # fmt: skip
    assert recoverability.last_read(state) == recoverability.LastRead(T0, 2, 42)
    assert recoverability.last_read(VerificationState()) is None


def _row(label: str, chain: list[str], end: datetime, **checks: str) -> BackupRow:
    row = BackupRow(label, "full" if len(chain) == 1 else "incremental", "ok", None, chain, 1,
                    None, None, T0, T0, 1, "18", checksums="ok", content="ok")  # fmt: skip
    for key, value in checks.items():
        setattr(row, key, value)
    row.window = RecoveryWindow(label, 1, "0/1", T0, "0/2", end, "seg", None)
    return row


def test_the_verified_window_ends_where_a_backup_whose_whole_chain_passed_recovers_to() -> None:
    report = VerificationReport("file:///r", None, None, T0)
    report.backups = [
        _row("F", ["F"], T0 + timedelta(minutes=1), content="ok at 2026-11-01 06:00 UTC"),
        _row("I1", ["F", "I1"], T0 + timedelta(minutes=2)),
        _row("F2", ["F2"], T0 + timedelta(minutes=3), checksums="failed"),
        _row("I2", ["F2", "I2"], T0 + timedelta(minutes=4)),  # its full is damaged
        _row("F3", ["F3"], T0 + timedelta(minutes=5), content="not checked"),
    ]
    assert report.verified_until() == T0 + timedelta(minutes=2)
    report.backups[1].pg_verifybackup = "failed"
    assert report.verified_until() == T0 + timedelta(minutes=1)
    report.backups[0].status = "failed"
    assert report.verified_until() is None


# --- end to end --------------------------------------------------------------------------------


@pytest.fixture
def site() -> Iterator[Site]:
    s = Site.create(recovery={"objectives": {"rto": "2h", "rpo": "5min"}})
    try:
        s.seed(users=4, weeks=2, seed=3)
        yield s
    finally:
        s.destroy()


def _alerts(site: Site, textfiles: Path) -> dict[str, float]:
    done = site.cli("alerts", "--no-record", "--textfile", str(textfiles))
    assert done.returncode in (0, 1, 2), done.stdout + done.stderr
    return _values((textfiles / "powrops.prom").read_text())


def _ts(value: Any) -> float:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.timestamp()


@pytest.mark.pg
def test_alerts_export_what_the_verification_and_the_drill_recorded(
    site: Site, tmp_path: Path
) -> None:
    assert site.cli("backup", "full").returncode == 0
    before = _alerts(site, tmp_path)
    assert not EVIDENCE & before.keys(), EVIDENCE & before.keys()
    assert before["powrops_recovery_rto_objective_seconds"] == 7200
    assert before["powrops_recovery_rpo_objective_seconds"] == 300

    verified = site.cli("report", "run", "backup_verification")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    [result_file] = (site.root / "reports" / "backup_verification").glob("*/result.json")
    result = json.loads(result_file.read_text())
    figures = result["figures"]
    assert figures["test_restore"] is True and figures["recovery_window_end"], figures
    [label] = [b["label"] for b in site.backups()]
    listed = recovery_windows(site.settings)[label]  # the window from the archive's listing
    state = json.loads(repos.primary(site.settings).get_bytes(STATE_KEY))
    newest = max(read["read_at"] for read in state["objects"].values())
    reads = [read for read in state["objects"].values() if read["read_at"] == newest]

    after_verification = _alerts(site, tmp_path)
    assert after_verification["powrops_restore_last_success_timestamp_seconds"] == _ts(
        result["finished_at"]
    )
    end = after_verification["powrops_recovery_window_end_timestamp_seconds"]
    assert end == _ts(figures["recovery_window_end"]) == _ts(listed.end_time)
    assert after_verification["powrops_verification_last_read_timestamp_seconds"] == _ts(newest)
    assert (
        after_verification["powrops_verification_read_objects"]
        == len(reads)
        == (figures["files_checked"] + figures["wal_checked"])
    )
    assert after_verification["powrops_verification_read_bytes"] == sum(r["size"] for r in reads)
    assert not {k for k in after_verification if k.startswith("powrops_drill_")}

    drill = site.cli("drill", "--json", timeout=600)
    assert drill.returncode in (0, 1), drill.stdout + drill.stderr
    drilled = json.loads(drill.stdout)
    [(drill_at,)] = site.sql("SELECT at FROM ops.events WHERE kind = 'drill'")

    after_drill = _alerts(site, tmp_path)
    assert after_drill["powrops_drill_rto_seconds"] == drilled["rto_s"] > 0
    assert after_drill["powrops_drill_rpo_seconds"] == drilled["rpo_s"]
    assert after_drill["powrops_drill_last_run_timestamp_seconds"] == _ts(drill_at)
    assert after_drill["powrops_restore_last_success_timestamp_seconds"] == _ts(drill_at)
    assert after_drill["powrops_recovery_rpo_objective_seconds"] == 300
