"""``powrops demo``: the embedded default set up from nothing, and the whole suite run once.

In order: start the cluster, migrate, give the job roles their passwords (the generated
schedule logs in with them), seed demo data with planted defects; a full backup, some
writes (new workouts with their sets), an incremental backup; then every report of
:data:`DEMO_REPORTS` in that order - the quarterly review last, because it reads the others'
results - and the index. A report that is not in this checkout is skipped and says so.

Running it again reuses the cluster, finds the schema at head and the demo data already
loaded, takes new backups and adds one new run of each report to the archive.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from powrops import migrate
from powrops.backup.run import server_facts, take_backup
from powrops.config import handoff_env
from powrops.db import connect, engine, identity, secrets, target
from powrops.demo import data as demo_data
from powrops.errors import ParameterError
from powrops.findings import Severity
from powrops.format import human_bytes, human_seconds
from powrops.pg import embedded
from powrops.pg.embedded import set_job_passwords
from powrops.quarterly.model import Quarter
from powrops.reports.remote import ReportArchive
from powrops.reports.runner import run_report
from powrops.reports.spec import discover

if TYPE_CHECKING:
    from powrops.config import Settings

# (report, parameters): the suite, in the order it runs.
DEMO_REPORTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("readiness_report", {}),
    ("backup_verification", {"restore": True}),
    ("recovery_drill", {}),
    ("integrity_report", {}),
    ("growth_report", {}),
    ("retention_report", {}),
    ("quarterly_review", {}),  # last: it reads the results of the others
)

# The writes between the full and the incremental backup: a workout today for some users,
# with three sets each (total_volume kept consistent), in one statement.
DEMO_WRITES = """
WITH picked AS (
    SELECT id AS user_id FROM public.users WHERE deleted_at IS NULL ORDER BY id LIMIT %(n)s
), exercise AS (
    SELECT id FROM public.exercises WHERE user_id IS NULL ORDER BY id LIMIT 1
), totals AS (
    UPDATE public.user_totals t
    SET workout_count = t.workout_count + 1, total_volume = t.total_volume + 3 * 60.00 * 8,
        updated_at = now()
    FROM picked p WHERE t.user_id = p.user_id
), new_workouts AS (
    INSERT INTO public.workouts (user_id, date, notes, total_volume)
    SELECT user_id, current_date, 'demo: written between the full and the incremental backup',
           3 * 60.00 * 8
    FROM picked
    RETURNING id
)
INSERT INTO public.workout_sets (workout_id, exercise_id, set_number, weight, reps)
SELECT w.id, e.id, s, 60.00, 8 FROM new_workouts w, exercise e, generate_series(1, 3) s
"""


def _line(step: str, started: float, detail: str) -> None:
    print(f"[{time.monotonic() - started:6.1f}s] {step:10} {detail}", flush=True)


def _start(settings: Settings) -> str:
    """The embedded cluster created or started (the demo is one of the commands that may);
    what the demo's first line says. A configured server is refused, as `powrops db`
    refuses it: the demo loads data with planted defects and writes workouts, and on a
    database host POWROPS_CONFIG names production."""
    if settings.database.url is not None:
        raise ParameterError(
            f"database.url is configured ({target(settings).display}): `powrops demo` loads "
            "demo data with planted defects and runs only on the embedded default; unset "
            "database.url (or POWROPS_DATABASE_URL) to run it"
        )
    cluster, _, _ = embedded.start(settings)
    return f"{target(settings).display} (embedded, {cluster.data_dir})"


def run_demo(settings: Settings, *, users: int = 50, weeks: int = 26, seed: int = 42) -> int:
    """Set up, back up, run the suite, rebuild the index. Returns an exit code."""

    started = time.monotonic()
    _line("database", started, _start(settings))
    eng = engine(settings)
    migrate.upgrade(eng, "head")
    _line("migrate", started, f"schema at {migrate.current(eng)}")
    logins = set_job_passwords(settings)  # None with database.url: the roles are not ours
    if logins is not None:
        _line("roles", started, f"job roles' passwords in {logins.passfile}")
    dataset = demo_data.generate(users=users, weeks=weeks, seed=seed, defects=True)
    report = demo_data.load(eng, dataset)
    eng.dispose()
    _line("seed", started, report.describe().splitlines()[0])
    _backup(settings, started, "full")
    _line("writes", started, f"{_writes(settings)} workout sets written")
    _backup(settings, started, "incremental")
    failed = _reports(settings, started)

    index = ReportArchive.from_settings(settings).publish_index()
    _line("index", started, str(index))
    return 3 if failed else 0


def _writes(settings: Settings, users: int = 10) -> int:

    with connect(settings) as conn:
        cur = conn.execute(DEMO_WRITES, {"n": users})
        conn.commit()
        return int(cur.rowcount)


def _backup(settings: Settings, started: float, kind: str) -> None:
    """One backup; an incremental is skipped on servers older than PostgreSQL 17."""

    if kind == "incremental" and server_facts(settings).version_num < 170000:
        _line("backup", started, "incremental skipped: the server is older than PostgreSQL 17")
        return
    record = take_backup(settings, kind, echo=None).record  # type: ignore[arg-type]
    _line(
        "backup",
        started,
        f"{kind} {record.label}: {human_bytes(record.raw_size)} -> "
        f"{human_bytes(record.stored_size)} in {human_seconds(record.duration_s or 0)}",
    )


def _reports(settings: Settings, started: float) -> int:
    """Run the suite in order; the number of runs that failed to run."""

    found = discover()
    remote = ReportArchive.from_settings(settings)
    acting_on = identity(settings).to_dict()  # each page names the database it reports on
    failed = 0
    for name, params in DEMO_REPORTS:
        if name not in found:
            _line("report", started, f"{name}: skipped (no such report in this checkout)")
            continue
        spec = found[name]
        given = {k: v for k, v in params.items() if k in spec.parameters}
        if name == "quarterly_review":
            # the demo's evidence is all from today: review the current quarter
            given["quarter"] = Quarter.of(datetime.now(UTC)).label
        result = run_report(
            name,
            given,
            reports_dir=settings.reports_dir,
            timeout=settings.reports.timeout.timedelta.total_seconds(),
            env=handoff_env(settings),
            secrets=secrets(settings),
            remote=remote,
            target=acting_on,
            server=settings.server,
        )
        failed += result.result.get("failed", False) is True
        took = result.result.get("duration_s")
        _line(
            "report",
            started,
            f"{name}: {Severity(result.exit_code).name}{_headline(result.result)} "
            f"in {took:.0f} s -> {result.path / 'report.html'}",
        )
    return failed


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
