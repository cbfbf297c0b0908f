"""The shipped Prometheus rules and Grafana dashboard name only metrics powrops writes."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import yaml
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from powrops import alerts
from powrops.alerts import recoverability
from powrops.findings import Finding, Severity

CONTRIB = Path(__file__).resolve().parents[1] / "contrib"
NAME = re.compile(r"\bpowrops_[a-z_]+\b")


def _written() -> set[str]:
    figures = {"disk_percent": 1.0, "total_bytes": 1, "dead_tuple_ratio": 0.1, "wal_bytes": 1,
               "archive_ready": 0, "xid_age": 5, "slots": 0,
               "connections": {"used": 1, "max_connections": 10, "reserved": 3}}  # fmt: skip
    at = datetime.now(UTC)
    evidence = recoverability.Recoverability(3600.0, 900.0, at, 60.0, 1.0, at, "drill 1", at,
                                             recoverability.LastRead(at, 3, 1024))  # fmt: skip
    figures["recoverability"] = evidence.to_dict()
    report = alerts.AlertReport(
        [Finding("query_time", Severity.WARNING, "slow", object="queryid 1", value=1.5)],
        datetime.now(UTC),
        figures=figures,
    )
    families = text_string_to_metric_families(alerts.openmetrics(report))
    return {sample.name for family in families for sample in family.samples}


def test_rules_and_dashboard_use_written_metrics() -> None:
    written = _written()
    rules = yaml.safe_load((CONTRIB / "prometheus" / "powrops-alerts.rules.yml").read_text())
    exprs = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    assert len(exprs) >= 4 and all(
        rule.get("alert") for g in rules["groups"] for rule in g["rules"]
    )
    dashboard = json.loads((CONTRIB / "grafana" / "powrops-dashboard.json").read_text())
    exprs += [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {name for expr in exprs for name in NAME.findall(expr)}
    assert used and used <= written, used - written
