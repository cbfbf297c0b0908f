"""``powrops demo``: the embedded default set up from nothing, and every report run once.

Running it again reuses the cluster, finds the schema at head and the demo data already
loaded, and only adds a new run of each report to the archive.
"""

from __future__ import annotations

import time

from powrops.config import Settings
from powrops.findings import Severity

DEMO_RUNBOOKS = ("recovery_drill",)


def _line(step: str, started: float, detail: str) -> None:
    print(f"[{time.monotonic() - started:6.1f}s] {step:10} {detail}", flush=True)


def run_demo(settings: Settings, *, users: int = 50, weeks: int = 26, seed: int = 42) -> int:
    """Start, migrate, seed, run every scheduled report, rebuild the index. Returns an exit code."""
    from powrops import demo_data, migrate
    from powrops.db import engine, secrets, target
    from powrops.reports.index import build_index
    from powrops.reports.runner import discover, project_root, run_report

    started = time.monotonic()
    tgt = target(settings)
    _line("database", started, f"{tgt.display}" + (" (embedded)" if tgt.embedded else ""))
    eng = engine(settings)
    migrate.upgrade(eng, "head")
    _line("migrate", started, f"schema at {migrate.current(eng)}")
    dataset = demo_data.generate(users=users, weeks=weeks, seed=seed, defects=True)
    report = demo_data.load(eng, dataset)
    eng.dispose()
    _line("seed", started, report.describe().splitlines()[0])
    _backups(settings, started)
    failed = 0
    found = discover(project_root())
    # Every scheduled report, and the recovery drill runbook (it restores into a scratch
    # cluster and tears it down; the other runbooks act on request only).
    specs = [s for s in found.values() if s.kind == "scheduled"]
    specs += [found[name] for name in DEMO_RUNBOOKS if name in found]
    for spec in specs:
        result = run_report(
            spec.name,
            {},
            reports_dir=settings.reports_dir,
            timeout=settings.reports.timeout.timedelta.total_seconds(),
            secrets=secrets(settings),
        )
        failed += result.result.get("failed", False) is True
        headline = _headline(result.result)
        _line(
            "report",
            started,
            f"{spec.name}: {Severity(result.exit_code).name}{headline} "
            f"-> {result.path / 'report.html'}",
        )
    index = build_index(settings.reports_dir)
    _line("index", started, str(index))
    return 3 if failed else 0


def _backups(settings: Settings, started: float) -> None:
    """A full backup, then an incremental one where the server supports it."""
    from powrops.backup.run import server_facts, take_backup

    for kind in ("full", "incremental"):
        if kind == "incremental" and server_facts(settings).version_num < 170000:
            _line("backup", started, "incremental skipped: the server is older than PostgreSQL 17")
            continue
        outcome = take_backup(settings, kind, echo=None)
        record = outcome.record
        _line(
            "backup",
            started,
            f"{kind} {record.label}: {record.raw_size / 2**20:.0f} MiB -> "
            f"{record.stored_size / 2**20:.1f} MiB in {record.duration_s:.1f} s",
        )


def _headline(result: dict[str, object]) -> str:
    """' (16 ok, 3 warning, 1 critical)' from a run's findings."""
    findings = result.get("findings")
    if not isinstance(findings, list) or not findings:
        return ""
    tally: dict[str, int] = {}
    for finding in findings:
        severity = str(finding.get("severity", "UNKNOWN")).lower()
        tally[severity] = tally.get(severity, 0) + 1
    order = ("ok", "warning", "critical", "unknown")
    return " (" + ", ".join(f"{tally[s]} {s}" for s in order if s in tally) + ")"
