"""Planning and applying every retention policy; recording what a run did."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from powrops.config import Settings
from powrops.durations import Duration
from powrops.errors import ConfigError, Interrupted, PowropsError
from powrops.retention import journal, liverows
from powrops.retention import policy_sql as q
from powrops.retention.archival import check_process
from powrops.retention.policies import (
    Archival,
    Context,
    DeletedAccounts,
    InactiveAccounts,
    LogPolicy,
    Policy,
    PolicyOutcome,
    PolicyPlan,
    WorkoutPolicy,
)


def policies(settings: Settings) -> list[Policy]:
    """The policies from ``settings.retention`` and ``archival``, in the order they apply.

    Erasure comes before archival so nothing is archived that is about to be erased, and the
    5-year limit on archived workouts before archival so expired rows are not archived again.
    """
    r = settings.retention
    for name, value in (("user_account.active", r.user_account.active),
                        ("workout_data.active", r.workout_data.active)):  # fmt: skip
        if not value.indefinite:
            raise ConfigError(
                f"retention.{name} = {value}: active data is kept indefinitely; powrops "
                "archives inactive users (archival.triggers) but never removes active ones"
            )
    age = Duration.parse(f"{settings.archival.triggers.age} days")
    found: list[Policy] = [
        Policy("user_account.active", "keep", r.user_account.active, "users",
               "active accounts are kept indefinitely"),
        DeletedAccounts("user_account.deleted", "erase", r.user_account.deleted, "users",
                        "deleted accounts are erased everywhere (as a GDPR erasure) after the "
                        "grace period", q.DELETED_USERS_COUNT),
        InactiveAccounts("user_account.inactive", "anonymize", r.user_account.inactive, "users",
                         "accounts inactive that long lose e-mail and name; history stays "
                         "anonymous", q.INACTIVE_COUNT),
        Policy("workout_data.active", "keep", r.workout_data.active, "workouts",
               "live workouts are kept indefinitely (inactive users' are archived)"),
        WorkoutPolicy("workout_data.deleted", "delete", r.workout_data.deleted, "workouts",
                      "soft-deleted workouts and their sets are purged after the grace period",
                      q.WORKOUTS_DELETED_COUNT, select_sql=q.WORKOUTS_DELETED_LOCK),
        WorkoutPolicy("workout_data.archived", "delete", r.workout_data.archived,
                      "workouts + archived rows",
                      "archived workouts (archived_at, or archive files) reach end of retention",
                      q.WORKOUTS_ARCHIVED_COUNT,
                      select_sql=q.WORKOUTS_ARCHIVED_LOCK,
                      adjust_totals=True, expire_files=True),
        Archival("archival", "archive", age, "workouts + sets",
                 "users inactive that long (or over the size trigger) are moved to "
                 "validated archive files"),
    ]  # fmt: skip
    for category in ("security", "performance", "debug"):
        period = getattr(r.system_logs, category)
        found.append(LogPolicy(f"system_logs.{category}", "delete", period, "log rows",
                               f"{category} logs are kept {period}", q.LOGS_COUNT,
                               extra={"category": category}))  # fmt: skip
    return found


@dataclass
class RetentionResult:
    dry_run: bool
    now: datetime
    outcomes: list[PolicyOutcome] = field(default_factory=list)

    @property
    def errors(self) -> list[str]:
        return [f"{o.plan.policy}: {e}" for o in self.outcomes for e in o.errors]

    def plans(self) -> list[PolicyPlan]:
        return [o.plan for o in self.outcomes]

    def rows(self) -> list[dict[str, Any]]:
        return [
            {**o.plan.row(), "done": ", ".join(f"{n} {k}" for k, n in o.done.items() if n) or "-",
             "errors": "; ".join(o.errors)}
            for o in self.outcomes
        ]  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "now": self.now.isoformat(),
            "policies": [o.to_dict() for o in self.outcomes],
            "errors": self.errors,
        }


def plan(settings: Settings) -> RetentionResult:
    """How many rows each policy has due, and why (changes nothing; not recorded)."""
    return _run(settings, dry_run=True, record=False)


def apply(settings: Settings, *, dry_run: bool) -> RetentionResult:
    """Apply every policy (or, with ``dry_run``, plan them) and record the run."""
    return _run(settings, dry_run=dry_run, record=True)


def _run(settings: Settings, *, dry_run: bool, record: bool) -> RetentionResult:
    chosen = policies(settings)
    if not dry_run:
        check_process(settings)
    with journal.connect(settings) as conn:
        ctx = Context(settings, conn, liverows.db_now(conn))
        result = RetentionResult(dry_run, ctx.now)
        try:
            for policy in chosen:
                outcome = PolicyOutcome(policy.plan(ctx))
                result.outcomes.append(outcome)
                if not dry_run and outcome.plan.due:
                    policy.apply(ctx, outcome)
        except PowropsError as exc:
            result.outcomes[-1].errors.append(str(exc))
            raise
        except KeyboardInterrupt as exc:  # the run's event must not read as a finished one
            if result.outcomes:
                result.outcomes[-1].errors.append(f"interrupted by {Interrupted.of(exc).signal}")
            raise
        finally:
            if record:
                _record(settings, result)
    return result


def _record(settings: Settings, result: RetentionResult) -> None:
    details = {
        "dry_run": result.dry_run,
        "policies": {o.plan.policy: {"action": o.plan.action, "due": o.plan.due,
                                     "done": o.done, "errors": o.errors}
                     for o in result.outcomes},
        "errors": result.errors,
    }  # fmt: skip
    changed = any(any(o.done.values()) for o in result.outcomes)
    action = "RETENTION" if changed and not result.dry_run else None
    journal.record_run(settings, "retention", details, audit_action=action)
