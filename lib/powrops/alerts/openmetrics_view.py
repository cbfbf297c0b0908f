"""An alerts evaluation as metrics: OpenMetrics (``--format openmetrics``) or the Prometheus
text format node_exporter's textfile collector reads (``--textfile DIR``).

Every finding is a sample of ``powrops_alert_severity`` (0 OK, 1 WARNING, 2 CRITICAL,
3 UNKNOWN; labels ``check`` and ``object``, the table, index, database, slot or pid it is
about) and, when it has a number, of ``powrops_alert_value``. The evaluation's key figures
follow, with their unit in the name, then the recorded evidence of recoverability
(``RECOVERABILITY``: the last drill's RTO and RPO and the objectives, the last successful test
restore, the end of the verified recovery window, what the last verification read), each
only when there is evidence for it, after ``powrops_recoverability_evidence_read`` (0 when the
record could not be read: the evidence left out is then unknown). Every sample carries
``server`` (the configured server's name, ``default`` without ``[servers.*]``), so a fleet
watched from one host stays apart in Prometheus. Pure: no database, no file.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from powrops.findings import Finding, Severity

#: key of AlertReport.figures -> (metric name, unit or "", help, factor)
FIGURES: dict[str, tuple[str, str, str, float]] = {
    "disk_percent": ("powrops_disk_usage_ratio", "ratio",
                     "used share of the filesystem holding the data", 0.01),
    "total_bytes": ("powrops_database_size_bytes", "bytes",
                    "size of the database's relations as the last VACUUM or ANALYZE counted "
                    "their pages (pg_class.relpages), those never counted that rows went "
                    "into measured", 1.0),
    "dead_tuple_ratio": ("powrops_dead_tuples_ratio", "ratio",
                         "dead / (live + dead) tuples over all tables", 1.0),
    "wal_bytes": ("powrops_wal_directory_bytes", "bytes", "size of pg_wal", 1.0),
    "archive_ready": ("powrops_archive_ready_segments", "",
                      "WAL segments waiting to be archived", 1.0),
    "xid_age": ("powrops_xid_age_transactions", "", "oldest age(datfrozenxid)", 1.0),
    "slots": ("powrops_replication_slots", "", "replication slots", 1.0),
}  # fmt: skip


#: key of figures["recoverability"] (alerts/recoverability.py) -> (metric name, unit, help);
#: times become Unix timestamps. A key without a value (no evidence) exports nothing.
RECOVERABILITY: dict[str, tuple[str, str, str]] = {
    "rto_objective_s": ("powrops_recovery_rto_objective_seconds", "seconds",
                        "recovery time objective (recovery.objectives.rto)"),
    "rpo_objective_s": ("powrops_recovery_rpo_objective_seconds", "seconds",
                        "recovery point objective (recovery.objectives.rpo)"),
    "drill_at": ("powrops_drill_last_run_timestamp_seconds", "seconds",
                 "when the last recovery drill ended"),
    "drill_rto_s": ("powrops_drill_rto_seconds", "seconds",
                    "RTO of the last drill: restore start to the restored server answering"),
    "drill_rpo_s": ("powrops_drill_rpo_seconds", "seconds",
                    "RPO of the last drill: its target against the last transaction replayed"),
    "restored_at": ("powrops_restore_last_success_timestamp_seconds", "seconds",
                    "when the last successful test restore (verification or drill) ended"),
    "window_end": ("powrops_recovery_window_end_timestamp_seconds", "seconds",
                   "newest point a verified backup recovers to over verified WAL"),
    "verification_read_at": ("powrops_verification_last_read_timestamp_seconds", "seconds",
                             "when the last verification read objects back intact"),
    "verification_read_objects": ("powrops_verification_read_objects", "",
                                  "objects the last verification read back intact"),
    "verification_read_bytes": ("powrops_verification_read_bytes", "bytes",
                                "bytes the last verification read back intact"),
}  # fmt: skip


EVIDENCE_READ = "powrops_recoverability_evidence_read"
EVIDENCE_READ_HELP = (
    "1 when this run read the record of drills and test restores, 0 when it could not "
    "(database unreachable, ops.events refused): the evidence is then left out, unknown"
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: Mapping[str, str]) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs.items())
    return "{" + inner + "}" if inner else ""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _fmt(value: float) -> str:
    return repr(float(value)) if value != int(value) else str(int(value))


class _Out:
    def __init__(self, openmetrics: bool, server: str) -> None:
        self.openmetrics = openmetrics
        self.server = server
        self.lines: list[str] = []

    def family(self, name: str, kind: str, text: str, unit: str = "") -> None:
        self.lines.append(f"# HELP {name} {text}")
        self.lines.append(f"# TYPE {name} {kind}")
        if unit and self.openmetrics:
            self.lines.append(f"# UNIT {name} {unit}")

    def sample(self, name: str, value: float, labels: Mapping[str, str] | None = None) -> None:
        pairs = {"server": self.server, **(labels or {})}
        self.lines.append(f"{name}{_labels(pairs)} {_fmt(value)}")


def render(
    findings: Iterable[Finding],
    status: Severity,
    evaluated_at: float,
    figures: Mapping[str, Any],
    *,
    server: str,
    openmetrics: bool = True,
) -> str:
    """The metrics text of ``server``; OpenMetrics ends in ``# EOF``, the Prometheus text
    format does not."""
    rows = list(findings)
    out = _Out(openmetrics, server)
    out.family(
        "powrops_alerts_status",
        "gauge",
        "worst severity of the evaluation (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)",
    )
    out.sample("powrops_alerts_status", int(status))
    out.family(
        "powrops_alerts_last_run_timestamp_seconds", "gauge", "when the evaluation ran", "seconds"
    )
    out.sample("powrops_alerts_last_run_timestamp_seconds", evaluated_at)
    out.family("powrops_alerts_findings", "gauge", "findings of the evaluation by severity")
    for severity in Severity:
        n = sum(1 for f in rows if f.severity == severity)
        out.sample("powrops_alerts_findings", n, {"severity": severity.name})  # fmt: skip
    out.family(
        "powrops_alert_severity",
        "gauge",
        "severity of one finding (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)",
    )
    seen: set[tuple[str, str]] = set()
    valued = []
    for f in rows:
        key = (f.check, f.object or "")
        if key in seen:  # one sample per check and object: the worst comes first below
            continue
        seen.add(key)
        worst = max(
            (g for g in rows if (g.check, g.object or "") == key), key=lambda g: g.severity.rank
        )
        out.sample(
            "powrops_alert_severity",
            int(worst.severity),
            {"check": f.check, "object": f.object or ""},
        )
        if _number(worst.value) is not None:
            valued.append((key, _number(worst.value)))
    out.family(
        "powrops_alert_value",
        "gauge",
        "the figure a finding judged (its unit is the check's: see powrops alerts --json)",
    )
    for (check, obj), value in valued:
        assert value is not None
        out.sample("powrops_alert_value", value, {"check": check, "object": obj})
    for figure, (name, unit, text, factor) in FIGURES.items():
        number = _number(figures.get(figure))
        if number is None:
            continue
        out.family(name, "gauge", text, unit)
        out.sample(name, number * factor)
    connections = figures.get("connections")
    if isinstance(connections, Mapping) and connections.get("used") is not None:
        out.family("powrops_connections", "gauge", "client connections in use")
        out.sample("powrops_connections", int(connections["used"]))
        out.family("powrops_connections_max", "gauge", "max_connections less reserved ones")
        usable = int(connections["max_connections"]) - int(connections["reserved"])
        out.sample("powrops_connections_max", usable)
    recovery = figures.get("recoverability")
    if isinstance(recovery, Mapping):
        _recoverability(out, recovery, evaluated_at)
    if openmetrics:
        out.lines.append("# EOF")
    return "\n".join(out.lines) + "\n"


def _seconds(value: Any) -> float | None:
    """A figure as a number: numbers as they are, ISO times as Unix timestamps."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    return _number(value)


def _recoverability(out: _Out, recovery: Mapping[str, Any], evaluated_at: float) -> None:
    """Whether the evidence was read, then the recorded evidence of recoverability; what has
    none, or was not read, is left out."""
    read = recovery.get("evidence_read")
    if isinstance(read, bool):
        out.family(EVIDENCE_READ, "gauge", EVIDENCE_READ_HELP)
        out.sample(EVIDENCE_READ, int(read))
    for key, (name, unit, text) in RECOVERABILITY.items():
        value = _seconds(recovery.get(key))
        if value is None:
            continue
        out.family(name, "gauge", text, unit)
        out.sample(name, value)
        if key == "restored_at":
            age = "powrops_restore_last_success_age_seconds"
            out.family(age, "gauge", "age of the last successful test restore", "seconds")
            out.sample(age, max(evaluated_at - value, 0.0))
