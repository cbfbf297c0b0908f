"""Readiness: the strategy's "Initial Setup" checklist checked against the live server
(:mod:`.checklist`).

The package hands on the checklist's names: ``readiness.run_checks(settings)``."""

from __future__ import annotations

from powrops.readiness.checklist import (
    BACKUP,
    CHECKS,
    MAINTENANCE,
    MONITORING,
    RECOVERY,
    ROLES,
    SETTINGS,
    Check,
    check_maintenance,
    check_monitoring,
    check_recovery_docs,
    check_schema,
    check_storage,
    check_wal,
    check_writable,
    current_revision,
    figures,
    group,
    period,
    run_checks,
    server_facts,
    show_facts,
)

__all__ = [
    "BACKUP",
    "CHECKS",
    "MAINTENANCE",
    "MONITORING",
    "RECOVERY",
    "ROLES",
    "SETTINGS",
    "Check",
    "check_maintenance",
    "check_monitoring",
    "check_recovery_docs",
    "check_schema",
    "check_storage",
    "check_wal",
    "check_writable",
    "current_revision",
    "figures",
    "group",
    "period",
    "run_checks",
    "server_facts",
    "show_facts",
]
