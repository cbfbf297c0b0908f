"""Data integrity: validation rules, consistency checks, physical checks and safe repairs.

``run(settings)`` executes every configured check in one read-only REPEATABLE READ snapshot
with ``consistency.statement_timeout`` and records the run in ``ops.check_runs`` (kind
``integrity``; counts per check, findings). ``repair`` applies the known fixes with audit
records; ``check(settings, repair=...)`` is the whole procedure the CLI and the daily report
use: check, repair when asked, check again. ``history`` returns past runs for trends.

Check names (stable; the counts' keys): ``weight_range``, ``weight_required``, ``reps_range``,
``reps_required``, ``date_range``, ``date_required``, one ``orphan_<table>[_<parent>]`` per
foreign key of the POWR schema (``orphan_workouts``, ``orphan_workout_sets``, ...),
``workout_total_volume``, ``user_totals``, ``amcheck``, ``checksum_failures``,
``data_checksums`` and ``audit_trail``.
"""

from __future__ import annotations

from powrops.integrity.check import CheckOutcome, check
from powrops.integrity.consistency import Relationship, relationships
from powrops.integrity.model import DEFECT_CHECKS, CheckResult, IntegrityReport
from powrops.integrity.repair import CLASSES, RepairReport, RepairResult, repair
from powrops.integrity.run import KIND, collect, history, run

__all__ = [
    "CLASSES",
    "DEFECT_CHECKS",
    "KIND",
    "CheckOutcome",
    "CheckResult",
    "IntegrityReport",
    "Relationship",
    "RepairReport",
    "RepairResult",
    "check",
    "collect",
    "history",
    "relationships",
    "repair",
    "run",
]
