"""The integrity procedure: check, repair when asked (or show what a repair would do), recheck."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from powrops.config import Settings
from powrops.errors import ParameterError
from powrops.findings import Graded, Severity
from powrops.integrity.model import IntegrityReport
from powrops.integrity.repair import RepairReport
from powrops.integrity.repair import repair as apply_repairs
from powrops.integrity.run import connection, run


@dataclass
class CheckOutcome(Graded):
    """The first run, the repair (if any) and the run after it."""

    before: IntegrityReport
    repair: RepairReport | None = None
    after: IntegrityReport | None = None

    @property
    def final(self) -> IntegrityReport:
        return self.after or self.before

    @property
    def status(self) -> Severity:
        if self.repair is not None and self.repair.failed:
            return Severity.CRITICAL
        return self.final.status

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.name,
            "before": self.before.to_dict(),
            "repair": self.repair.to_dict() if self.repair else None,
            "after": self.after.to_dict() if self.after else None,
        }


def check(
    settings: Settings,
    *,
    repair: bool = False,
    dry_run: bool = False,
    store: bool | None = None,
    full: bool = False,
) -> CheckOutcome:
    """Run the checks; with ``repair`` apply the fixes and check again.

    The daily procedure is incremental where it can be (each check over what changed since
    the last stored run; full when ``consistency.full_every`` has passed, on a first run);
    ``full`` makes every check read everything.

    ``dry_run`` (with ``repair``) stores nothing and changes nothing: it reports what each fix
    would change. A real repair needs ``consistency.repair.auto_fix`` on.
    """
    if repair and not dry_run and not settings.consistency.repair.auto_fix:
        raise ParameterError(
            "consistency.repair.auto_fix is off: repairs are disabled by configuration "
            "(a --dry-run still shows what they would do)"
        )
    keep = (not dry_run) if store is None else store
    with connection(settings) as conn:
        before = run(conn, settings, store=keep, full=full)
        outcome = CheckOutcome(before)
        if not repair:
            return outcome
        channels = settings.notify.channels if settings.consistency.repair.notification else None
        outcome.repair = apply_repairs(
            conn,
            before.run_id,
            dry_run=dry_run,
            notify_channels=channels,
            max_rows=settings.consistency.repair.max_rows,
            server=settings.server,
        )
        if not dry_run:
            outcome.after = run(conn, settings, store=keep, full=full)
    return outcome
