"""Recovery drills: the strategy's recovery plan executed against a scratch target, measured.

The plan's six steps run in order, each timed: stop application, restore latest full backup,
apply incremental backups (the chain is combined and WAL replayed to the target), verify data
integrity, update configurations, restart application. In a drill the application steps do not
touch production: they are recorded as skipped with the reason (in a real recovery they run the
configured ``recovery.application`` commands).

Before the target the drill writes a marker row into ``ops.events`` in the source database,
together with the POWR tables' row counts as of that commit, then one marker after it; the
restored cluster must hold the first and not the second. RTO is the time from the start of the
restore to the restored server accepting queries; RPO is the distance between the target and
the last transaction the archive let recovery replay. Each drill's result is kept in
``ops.events`` (kind ``drill``) for trends.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from powrops import held, journal
from powrops.config import RECOVERY_STEPS, Settings
from powrops.db import connect
from powrops.errors import Interrupted
from powrops.findings import Finding, Graded, Severity
from powrops.format import Echo, human_rows, human_time
from powrops.restore import RecoveryTarget, restore
from powrops.restore.checks import RestoredChecks, table_counts
from powrops.restore.smoke import scratch_cluster_dir
from powrops.tables import PUBLIC_TABLES


@dataclass
class DrillStep:
    number: int
    name: str
    status: str = "ok"  # ok, skipped, failed, interrupted
    seconds: float = 0.0
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DrillResult(Graded):
    drill_id: str
    started_at: datetime
    target: dict[str, Any]
    label: str | None = None
    chain: tuple[str, ...] = ()
    steps: list[DrillStep] = field(default_factory=list)
    rto_s: float | None = None
    rpo_s: float | None = None
    objectives: dict[str, float] = field(default_factory=dict)
    verification: dict[str, Any] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    finished_at: datetime | None = None

    def graded(self) -> list[Finding]:
        return self.findings

    def to_dict(self) -> dict[str, Any]:
        return {
            "drill_id": self.drill_id,
            "started_at": self.started_at.isoformat(),
            "target": self.target,
            "label": self.label,
            "chain": list(self.chain),
            "steps": [s.to_dict() for s in self.steps],
            "rto_s": self.rto_s,
            "rpo_s": self.rpo_s,
            "objectives": self.objectives,
            "verification": self.verification,
            "findings": [f.to_dict() for f in self.findings],
            "timings": self.timings,
            "status": self.status.name,
        }


class Drill:
    """One drill, step by step (the recovery drill runbook calls these one cell at a time)."""

    def __init__(
        self,
        settings: Settings,
        *,
        target_time: datetime | None = None,
        echo: Echo | None = print,
        keep: bool = False,
        timeout: float = 900,
    ) -> None:
        self.settings = settings
        self.echo = echo
        self.keep = keep
        self.timeout = timeout
        self.given_target = target_time
        self.result = DrillResult(uuid.uuid4().hex[:12], datetime.now(UTC), {})
        self.markers: dict[str, dict[str, Any]] = {}
        self.restored: Any = None
        self.workdir: Path | None = None
        self._restore_began: float | None = None
        self._held: int | None = None  # powrops.held's token while the scratch exists

    # -- helpers ----------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        if self.echo:
            self.echo(text)

    @contextmanager
    def _step(self, number: int) -> Iterator[DrillStep]:
        step = DrillStep(number, RECOVERY_STEPS[number - 1])
        began = time.monotonic()
        try:
            yield step
        except KeyboardInterrupt:
            step.status = "interrupted"
            raise
        except BaseException as exc:
            step.status = "failed"
            step.message = step.message or f"{type(exc).__name__}: {exc}"
            raise
        finally:
            step.seconds = round(time.monotonic() - began, 3)
            self.result.steps.append(step)
            self._say(
                f"step {number} {step.name:28} {step.status.upper():8} {step.seconds:7.2f}s  "
                f"{step.message}"
            )

    def _source(self) -> psycopg.Connection[Any]:

        return connect(self.settings, autocommit=True)

    def _skip_application(self, number: int, command: str | None, what: str) -> None:
        with self._step(number) as step:
            step.status = "skipped"
            configured = f"would run {command!r}" if command else "no command is configured"
            step.message = (
                "drill against a scratch target: the production application is not touched "
                f"({what}: {configured} in a real recovery)"
            )

    # -- before the target ------------------------------------------------------------------

    def prepare(self) -> datetime:
        """Markers around the target (drill to 'now'), or the given target; returns the target."""
        if self.given_target is not None:
            self.result.target = {
                "kind": "time",
                "value": self.given_target.isoformat(),
                "markers": False,
            }
            return self.given_target

        with self._source() as conn:
            with conn.transaction():
                counts = table_counts(conn, PUBLIC_TABLES)
                before = self._marker(conn, "before", counts)
            target = conn.execute("SELECT clock_timestamp()").fetchone()[0]  # type: ignore[index]
            time.sleep(1.0)
            after = self._marker(conn, "after", {})
            self._switch_and_wait(conn)
        self.markers = {"before": before, "after": after}
        self.result.target = {"kind": "time", "value": target.isoformat(), "markers": True}
        self._say(
            f"markers written: before #{before['id']}, after #{after['id']}; "
            f"target {human_time(target)}"
        )
        return target  # type: ignore[no-any-return]

    def _marker(
        self, conn: psycopg.Connection[Any], which: str, counts: dict[str, int]
    ) -> dict[str, Any]:
        details = {"drill": self.result.drill_id, "marker": which, "counts": counts}
        row = conn.execute(
            "INSERT INTO ops.events (kind, details, server) VALUES ('drill_marker', %s, %s) "
            "RETURNING id, at",
            (json.dumps(details), self.settings.server),
        ).fetchone()
        assert row is not None
        return {"id": int(row[0]), "at": row[1].isoformat(), "counts": counts}

    def _switch_and_wait(self, conn: psycopg.Connection[Any], timeout: float = 120) -> None:
        """PITR needs a commit after the target in the archive: switch WAL and wait for it."""
        name = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()[0]  # type: ignore[index]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = conn.execute("SELECT last_archived_wal FROM pg_stat_archiver").fetchone()
            if row is not None and row[0] is not None and row[0] >= name:
                return
            time.sleep(0.2)
        raise TimeoutError(
            f"WAL segment {name} was not archived within {timeout:.0f} s: is archiving working?"
        )

    # -- the plan ---------------------------------------------------------------------------

    def stop_application(self) -> None:
        self._skip_application(1, self.settings.recovery.application.stop_command, "stop_command")

    def restore_full(self, target: datetime) -> None:
        """Restore the chain into a new scratch directory; run again (by hand, the cell run
        twice), the earlier scratch restore is stopped and removed first, not left behind."""
        self.discard()
        self.restored, self.workdir = None, None
        prefix = f"drill-{self.result.drill_id}-"
        self.workdir = scratch_cluster_dir(self.settings, "drills", prefix)
        if self._held is None:
            self._held = held.hold(self._release_unfinished)
        with self._step(2) as step:
            self._restore_began = time.monotonic()
            self.restored = restore(
                self.settings, to=self.workdir / "pgdata",
                target=RecoveryTarget("time", target.isoformat()), start=False, echo=None,
            )  # fmt: skip
            self.result.label = self.restored.label
            self.result.chain = tuple(self.restored.chain)
            fulls = self.restored.chain[0]
            step.message = f"full {fulls} restored" + (
                f", {len(self.restored.chain) - 1} incremental(s) combined"
                if len(self.restored.chain) > 1
                else ""
            )

    def apply_incrementals(self) -> None:
        with self._step(3) as step:
            incrementals = list(self.restored.chain[1:])
            self.restored.start(timeout=self.timeout, echo=None)
            assert self._restore_began is not None
            self.result.rto_s = round(time.monotonic() - self._restore_began, 3)
            step.message = (
                f"incrementals {', '.join(incrementals)} applied; "
                if incrementals
                else "no incrementals; "
            ) + f"WAL replayed to the target, promoted on timeline {self.restored.timeline}"
            self.result.timings.update(self.restored.timings)

    def verify(self) -> None:
        with self._step(4) as step:
            checks = RestoredChecks(self.restored, self.settings, self.markers)
            self.result.verification = checks.run()
            failed = [k for k, v in self.result.verification.items() if not v.get("ok")]
            step.status = "failed" if failed else "ok"
            step.message = "all verified" if not failed else "problems in " + ", ".join(failed)

    def update_configurations(self) -> None:
        self._skip_application(
            5, self.settings.recovery.application.configure_command, "configure_command"
        )

    def restart_application(self) -> None:
        self._skip_application(6, self.settings.recovery.application.start_command, "start_command")

    # -- after ------------------------------------------------------------------------------

    def finish(self) -> DrillResult:
        self.result.finished_at = datetime.now(UTC)
        self._measure_rpo()
        self.result.findings = drill_findings(self.result, self.settings)
        self._keep_result()
        if not self.keep:
            self.discard()
        self._let_go()  # kept: the DBA's now
        return self.result

    def discard(self) -> None:
        """Stop the scratch server and remove the drill's directory, whatever step it got to."""
        self._let_go()
        if self.restored is not None:
            self.restored.destroy()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def abandon(self) -> str:
        """The drill was interrupted: stop the scratch server and remove its directory (kept,
        stopped, with ``keep``); what was left, in words."""
        self._let_go()
        where = f"drill {self.result.drill_id} stopped"
        if self.restored is None:
            self.discard()
            return f"{where} before its scratch cluster was restored: nothing left"
        if self.keep:
            self.restored.stop()
            return f"{where}: its scratch cluster is kept, stopped, in {self.restored.data_dir}"
        self.discard()
        return f"{where}: its scratch cluster was stopped and {self.workdir} removed"

    def _let_go(self) -> None:
        if self._held is not None:
            held.let_go(self._held)
            self._held = None

    def _release_unfinished(self) -> None:
        """The process ends with the drill unfinished (by hand, its kernel shut down, culled
        once its tab was closed, or its report run interrupted; its scratch server runs from
        the step that started it until the result cell): stop what it started, as an
        interrupt does (:mod:`powrops.held`)."""
        if self.result.finished_at is None and self.workdir is not None and self.workdir.exists():
            self.abandon()

    def _measure_rpo(self) -> None:
        objectives = self.settings.recovery.objectives
        self.result.objectives = {
            "rto_s": objectives.rto.timedelta.total_seconds(),
            "rpo_s": objectives.rpo.timedelta.total_seconds(),
        }
        if self.restored is None or not self.result.target.get("value"):
            return
        target = datetime.fromisoformat(self.result.target["value"])
        last = self.restored.last_replayed_xact
        if last is not None:
            self.result.rpo_s = round(max((target - last).total_seconds(), 0.0), 3)

    def _keep_result(self) -> None:
        try:
            with self._source() as conn:
                journal.record(conn, "drill", self.result.to_dict(), server=self.settings.server)
        except Exception as exc:  # the drill's own result stays available
            self._say(f"warning: could not keep the drill result in ops.events: {exc}")


def run_drill(
    settings: Settings,
    *,
    target_time: datetime | None = None,
    echo: Echo | None = print,
    keep: bool = False,
) -> DrillResult:
    """The whole recovery plan as a drill; a failing step ends the drill with its finding. A
    target time not reached yet is a ParameterError, before anything is written or restored."""
    future = RecoveryTarget("time", target_time.isoformat()).not_yet() if target_time else None
    if future is not None:
        raise future
    drill = Drill(settings, target_time=target_time, echo=echo, keep=keep)
    try:
        return _run(drill, settings, keep)
    except KeyboardInterrupt as exc:
        raise Interrupted.of(exc).leaving(drill.abandon()) from None


def _run(drill: Drill, settings: Settings, keep: bool) -> DrillResult:
    try:
        target = drill.prepare()
        drill.stop_application()
        drill.restore_full(target)
        drill.apply_incrementals()
        drill.verify()
        drill.update_configurations()
        drill.restart_application()
    except Exception as exc:  # every failure becomes a finding of the drill
        drill.result.findings.append(
            Finding("drill", Severity.CRITICAL, f"the drill failed: {exc}")
        )
        failed = drill.result.findings[-1]
        drill.result.findings = [*drill_findings(drill.result, settings), failed]
        if not keep:
            drill.discard()
        return drill.result
    return drill.finish()


def drill_findings(result: DrillResult, settings: Settings) -> list[Finding]:
    """Findings of a drill: RTO and RPO against objectives, and each verification."""
    findings: list[Finding] = []
    objectives = settings.recovery.objectives
    for name, value, objective in (
        ("rto", result.rto_s, objectives.rto),
        ("rpo", result.rpo_s, objectives.rpo),
    ):
        limit = objective.timedelta.total_seconds()
        if value is None:
            findings.append(
                Finding(
                    name,
                    Severity.UNKNOWN,
                    f"{name.upper()} was not measured",
                    expected=str(objective),
                )
            )
        else:
            severity = (
                Severity.OK
                if value <= limit
                else Severity.CRITICAL
                if value > 2 * limit
                else Severity.WARNING
            )
            findings.append(
                Finding(
                    name,
                    severity,
                    f"{name.upper()} {value:.1f} s against the objective {objective}",
                    value=value,
                    expected=limit,
                )
            )
    for area, data in result.verification.items():
        severity = Severity.OK if data.get("ok") else Severity.CRITICAL
        findings.append(Finding(f"verify.{area}", severity, _describe(area, data)))
    return findings + _steps_findings(result)


def _steps_findings(result: DrillResult) -> list[Finding]:
    """A step whose last run failed (CRITICAL), and a drill finished by hand without its
    verification (UNKNOWN: nothing shows the restored data usable). Under the command line and
    papermill a failed step stops the drill before it finishes; by hand the DBA may go on."""
    last = {step.number: step for step in result.steps}
    found = [
        Finding(f"step.{n}", Severity.CRITICAL, f"step {n} {s.name} {s.status}: {s.message}")
        for n, s in sorted(last.items())
        if s.status in ("failed", "interrupted")
    ]
    if not result.verification:
        found.append(Finding("verify", Severity.UNKNOWN, "the restored server was not verified "
                             "(step 4 not run): the drill does not show that the backup restores"
                             " usable data"))  # fmt: skip
    return found


def _describe(area: str, data: dict[str, Any]) -> str:
    if area == "data_integrity":
        parts = ["amcheck " + ("clean" if data["amcheck"]["ok"] else "found problems")]
        if "marker_before_present" in data:
            parts.append(
                "marker before the target "
                + ("present" if data["marker_before_present"] else "MISSING")
            )
            parts.append(
                "marker after the target "
                + ("absent" if data["marker_after_absent"] else "PRESENT")
            )
            parts.append(
                "row counts "
                + ("match the source at the target" if data["row_counts_match"] else "DIFFER")
            )
        return "; ".join(parts)
    if area == "application_state":
        heads = ", ".join(data["heads"])
        smoke = data["smoke"]
        answers = (
            ", ".join(f"{k} = {human_rows(v)}" for k, v in smoke.items())
            if isinstance(smoke, dict)
            else human_rows(smoke)
        )
        return f"schema at {data['revision']} (head {heads}); smoke queries: {answers}"
    roles = data.get("roles", {})
    return "; ".join(
        f"{r} " + ("logs in and reads" if v["ok"] else v.get("error", "failed"))
        for r, v in roles.items()
    )
