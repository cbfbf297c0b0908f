"""Alerts, read-only: the strategy's thresholds and the server checks a DBA pages on (``run``,
``server_checks``), statement time per interval (``intervals``), what one run leaves for the
next (``state``), notifications once per change (``notifications``), the recorded evidence of
recoverability (``recoverability``) and the metrics Prometheus reads (``openmetrics_view``).
Nothing here changes the server it watches.

The package hands on :mod:`.run`'s names: ``alerts.evaluate(settings)``."""

from __future__ import annotations

from powrops.alerts.run import (
    LOCAL_HOSTS,
    MIN_DEAD_TUPLES,
    RUNNING_SQL,
    STATE_NAME,
    TEXTFILE_NAME,
    AlertReport,
    activity_findings,
    backup_findings,
    backup_records,
    dead_tuple_findings,
    disk_findings,
    disk_usage,
    evaluate,
    freshness_findings,
    judge,
    local_data_dir,
    openmetrics,
    read_only_findings,
    record_run,
    running_statements,
    send_notifications,
    size_findings,
    statement_findings,
    textfile_name,
    unreachable,
    write_textfile,
)

__all__ = [
    "LOCAL_HOSTS",
    "MIN_DEAD_TUPLES",
    "RUNNING_SQL",
    "STATE_NAME",
    "TEXTFILE_NAME",
    "AlertReport",
    "activity_findings",
    "backup_findings",
    "backup_records",
    "dead_tuple_findings",
    "disk_findings",
    "disk_usage",
    "evaluate",
    "freshness_findings",
    "judge",
    "local_data_dir",
    "openmetrics",
    "read_only_findings",
    "record_run",
    "running_statements",
    "send_notifications",
    "size_findings",
    "statement_findings",
    "textfile_name",
    "unreachable",
    "write_textfile",
]
