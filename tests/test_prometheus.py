"""The shipped Prometheus rules and Grafana dashboard against Debian's Prometheus, promtool and
node-exporter: the rules checked and unit-tested with promtool, the textfile checked with
``promtool check metrics``, and end to end a real node-exporter reading what ``powrops alerts
--textfile`` writes for two servers, a real Prometheus loading the rules, an inactive slot
planted on the real cluster firing its alert, and resolving once the slot is dropped; and a
cluster of its own stopped under a firing drill alert, which holds while the database pages."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

import prometheus_site as site
from backup_site import Site
from cli_helpers import libpq, run_cli
from powrops import alerts, journal, migrate
from powrops.alerts import openmetrics_view, recoverability
from powrops.config import to_toml
from powrops.db import engine
from powrops.findings import Finding, Severity
from powrops.pg.embedded import embedded_cluster

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.skipif(not site.installed(), reason="needs Debian's prometheus and node-exporter"),
]

CONTRIB = Path(__file__).resolve().parents[1] / "contrib"
RULES = CONTRIB / "prometheus" / "powrops-alerts.rules.yml"
RULE_TESTS = CONTRIB / "prometheus" / "powrops-alerts.test.yml"
DASHBOARD = CONTRIB / "grafana" / "powrops-dashboard.json"
#: No backups, no archive_command on the session cluster: left out, as in test_alerts.py.
UNSET_UP = ["backup_freshness", "archive_age", "archive_ready", "archive_failures"]


def test_rules_pass_promtool_and_every_alert_has_a_unit_test() -> None:
    checked = site.promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = site.promtool("test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    names = set(re.findall(r"^\s*- alert: (\w+)", RULES.read_text(), re.M))
    fired = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    assert names and names <= fired, names - fired


def test_promtool_unit_tests_catch_a_rule_that_no_longer_groups_by_server(
    tmp_path: Path,
) -> None:
    """The unit tests can fail: a rule that merges the servers breaks them."""
    rules = tmp_path / RULES.name
    rules.write_text(RULES.read_text().replace("max by (instance, server, check, object)",
                                               "max by (instance, check, object)"))  # fmt: skip
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    tested = site.promtool("test", "rules", str(tmp_path / RULE_TESTS.name))
    assert tested.returncode != 0 and "PowropsCritical" in tested.stdout + tested.stderr


#: Faults planted in the rules, each of which their unit tests must catch.
RULE_FAULTS = {
    "no rule for one server's metrics gone": (
        "- alert: PowropsServerNotReporting",
        "- alert: PowropsServerNotReportingNot",
    ),
    "a server gone from one instance hidden by its namesake on another": (
        "unless on (instance, server)\n              powrops_alerts_status",
        "unless on (server)\n              powrops_alerts_status",
    ),
    "the whole fleet gone pages once per server besides absent()": (
        "\n          and on () group(powrops_alerts_status)",
        "",
    ),
    "restore age limit moved to 8 days": ("> 7 * 86400", "> 8 * 86400"),
    "a restore of any server hides another's absence": (
        "unless on (instance, server)\n              powrops_restore",
        "unless on (instance)\n              powrops_restore",
    ),
    "RPO judged against the RTO objective": (
        "on (instance, server) powrops_recovery_rpo_objective_seconds",
        "on (instance, server) powrops_recovery_rto_objective_seconds",
    ),
    "RTO rule reading the RPO": (
        "              powrops_drill_rto_seconds\n",
        "              powrops_drill_rpo_seconds\n",
    ),
    "the unreachable database's PowropsUnknown besides PowropsDatabaseUnreachable": (
        '(powrops_alert_severity{check!="database"})',
        "(powrops_alert_severity)",
    ),
    "the last restore read forgotten at once while the database is down": (
        "last_over_time(powrops_restore_last_success_timestamp_seconds[1d])\n                and",
        "last_over_time(powrops_restore_last_success_timestamp_seconds[1m])\n                and",
    ),
    "a drill record gone while the database is up held as if unread": (
        "last_over_time(powrops_drill_rpo_seconds[1d])\n"
        "                and on (instance, server)\n"
        "                  powrops_recoverability_evidence_read == 0\n",
        "last_over_time(powrops_drill_rpo_seconds[1d])\n",
    ),
    "a record never read judged as holding no restore": (
        "\n            and on (instance, server)\n"
        "              max_over_time(powrops_recoverability_evidence_read[1d]) == 1",
        "",
    ),
    "a restore read before the database went down forgotten": (
        "\n            unless on (instance, server)\n"
        "              last_over_time(powrops_restore_last_success_timestamp_seconds[1d])",
        "",
    ),
}


@pytest.mark.parametrize("fault", sorted(RULE_FAULTS))
def test_promtool_unit_tests_catch_a_planted_fault_in_a_rule(fault: str, tmp_path: Path) -> None:
    old, new = RULE_FAULTS[fault]
    text = RULES.read_text()
    assert text.count(old) == 1, old
    (tmp_path / RULES.name).write_text(text.replace(old, new))
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    tested = site.promtool("test", "rules", str(tmp_path / RULE_TESTS.name))
    assert tested.returncode != 0, fault
    assert "FAILED" in tested.stdout + tested.stderr


def _report(server: str) -> alerts.AlertReport:
    findings = [
        Finding("replication_slot", Severity.WARNING, "inactive", object='s"1\\x', value=1024),
        Finding("query_time", Severity.OK, "fine"),
    ]
    figures = {"disk_percent": 42.5, "total_bytes": 1 << 20, "slots": 1,
               "connections": {"used": 3, "max_connections": 100, "reserved": 3}}  # fmt: skip
    at = datetime.now(UTC)  # every figure of recoverability, as a run with evidence has them
    evidence = recoverability.Recoverability(3600.0, 900.0, at, 61.5, 0.25, at, "drill x", at,
                                             recoverability.LastRead(at, 5, 3 << 20))  # fmt: skip
    figures["recoverability"] = evidence.to_dict()
    return alerts.AlertReport(findings, at, figures=figures, server=server)


def test_textfile_passes_promtool_check_metrics_and_names_its_server(tmp_path: Path) -> None:
    default = alerts.write_textfile(_report("default"), tmp_path)
    prod = alerts.write_textfile(_report("prod"), tmp_path)
    assert (default.name, prod.name) == ("powrops.prom", "powrops_prod.prom")
    for path, server in ((default, "default"), (prod, "prod")):
        text = path.read_text()
        checked = site.promtool("check", "metrics", stdin=text)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        samples = [line for line in text.splitlines() if line and not line.startswith("#")]
        assert samples and all(f'{{server="{server}"' in line for line in samples), text
        names = {line.split("{", 1)[0] for line in samples}
        wanted = {name for name, _, _ in openmetrics_view.RECOVERABILITY.values()}
        wanted |= {"powrops_restore_last_success_age_seconds", openmetrics_view.EVIDENCE_READ}
        assert wanted <= names, text
        assert f'{openmetrics_view.EVIDENCE_READ}{{server="{server}"}} 1' in text
    broken = "# TYPE powrops_x gauge\npowrops_x{server=prod} 1\n"
    assert site.promtool("check", "metrics", stdin=broken).returncode != 0


def test_an_unreachable_database_is_unknown_on_stdout_and_in_the_textfile(tmp_path: Path) -> None:
    """Both ways Prometheus reads powrops say UNKNOWN (3), neither is empty nor 0."""
    env = {"POWROPS_DATABASE_URL": "postgresql://nobody:x@127.0.0.1:1/none",
           "POWROPS_STATE_DIR": str(tmp_path / "state")}  # fmt: skip
    done = run_cli("alerts", "--format", "openmetrics", "--textfile", str(tmp_path), env=env)
    assert done.returncode == 3 and "cannot connect" in done.stderr, done.stderr
    textfile = (tmp_path / "powrops.prom").read_text()
    assert site.promtool("check", "metrics", stdin=textfile).returncode == 0, textfile
    for text in (done.stdout, textfile):
        assert 'powrops_alerts_status{server="default"} 3' in text, text
        assert 'powrops_alert_severity{server="default",check="database",object=""} 3' in text
        # the evidence of recoverability unread, said so; the objectives (powrops.toml) known
        assert 'powrops_recoverability_evidence_read{server="default"} 0' in text, text
        assert 'powrops_recovery_rpo_objective_seconds{server="default"} 900' in text, text
        assert "powrops_drill_" not in text and "powrops_restore_" not in text, text
    assert done.stdout.endswith("# EOF\n")


# --- end to end ----------------------------------------------------------------------------


@pytest.fixture
def fleet(migrated_db: str, tmp_path: Path) -> Iterator[Path]:
    """A powrops.toml naming two servers, prod and staging, on the same migrated database
    (they share its ``ops``, each with its own rows and alert state)."""
    url = libpq(migrated_db)
    config = tmp_path / "powrops.toml"
    state = Path(tempfile.mkdtemp(prefix="powrops-prom-state-"))
    config.write_text(to_toml({"state": {"dir": str(state)}, "alerts": {"skip": UNSET_UP},
                               "servers": {"prod": {"database": {"url": url}},
                                           "staging": {"database": {"url": url}}}}))  # fmt: skip
    yield config
    shutil.rmtree(state, ignore_errors=True)


def _alerts_run(config: Path, server: str, textfiles: Path) -> None:
    done = run_cli("--config", str(config), "--server", server, "alerts", "--textfile",
                   str(textfiles))  # fmt: skip
    assert done.returncode in (0, 1, 2), done.stdout + done.stderr


def _dashboard_exprs(servers: str) -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"].replace("$instance", ".*").replace("$server", servers)
            found.append((panel["title"], expr))
    return found


@contextlib.contextmanager
def _watching(tmp_path: Path) -> Iterator[tuple[Path, site.NodeExporter, site.Prometheus]]:
    """node_exporter reading a new textfile folder, scraped by a Prometheus with the shipped
    rules (their delays shortened): the folder, node_exporter, and that Prometheus."""
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    rules = site.copy_rules(RULES, tmp_path / RULES.name)
    with (
        site.NodeExporter.start(textfiles, tmp_path / "node.log") as node,
        site.Prometheus.start(tmp_path, [rules], node) as prom,
    ):
        yield textfiles, node, prom


def test_slot_alert_fires_and_resolves_in_prometheus_for_each_server(
    fleet: Path, migrated_db: str, tmp_path: Path
) -> None:
    slot = "powrops_prom_" + uuid.uuid4().hex[:6]
    url = libpq(migrated_db)
    with (
        _watching(tmp_path) as (textfiles, node, prom),
        psycopg.connect(url, autocommit=True) as conn,
    ):
        for server in ("prod", "staging"):
            _alerts_run(fleet, server, textfiles)  # the statement baseline
        conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", (slot,))
        try:
            conn.execute("SELECT pg_sleep(1.05)")  # a statement over alerts.query_time 1 s
            for server in ("prod", "staging"):
                _alerts_run(fleet, server, textfiles)
            assert sorted(p.name for p in textfiles.iterdir()) == [
                "powrops_prod.prom",
                "powrops_staging.prom",
            ]
            prod = (textfiles / "powrops_prod.prom").read_text()
            checked = site.promtool("check", "metrics", stdin=prod)
            assert checked.returncode == 0, checked.stdout + checked.stderr
            for server in ("prod", "staging"):
                [firing] = site.wait_for(
                    lambda s=server: _firing(  # type: ignore[misc]
                        prom, "PowropsWarning", server=s, check="replication_slot", object=slot
                    ),
                    f"PowropsWarning on {server}'s slot to fire",
                )
                assert firing["labels"]["instance"] == node.address
            for title, expr in _dashboard_exprs("prod|staging"):
                result = prom.query(expr)
                assert result, f"dashboard panel {title!r}: {expr} returns no series"
                servers = {r["metric"].get("server") for r in result}
                assert servers <= {"prod", "staging", None}, (title, servers)
        finally:
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
        for server in ("prod", "staging"):
            _alerts_run(fleet, server, textfiles)
        site.wait_for(
            lambda: (
                not prom.alerts("PowropsWarning", check="replication_slot", object=slot) or None
            ),
            "the slot's alerts to resolve",
        )
        sample = prom.query(f'powrops_alert_severity{{check="replication_slot",object="{slot}"}}')
        assert sample == []


def _firing(prom: site.Prometheus, name: str, **labels: str) -> list[dict[str, Any]]:
    return [a for a in prom.alerts(name, **labels) if a["state"] == "firing"]


def test_one_servers_textfile_gone_pages_for_it_and_the_whole_fleet_gone_pages_once(
    fleet: Path, tmp_path: Path
) -> None:
    with _watching(tmp_path) as (textfiles, node, prom):
        for server in ("prod", "staging"):
            _alerts_run(fleet, server, textfiles)
        site.wait_for(lambda: len(prom.query("powrops_alerts_status")) == 2, "both servers")
        (textfiles / "powrops_prod.prom").unlink()
        [gone] = site.wait_for(lambda: _firing(prom, "PowropsServerNotReporting"),
                               "prod's missing metrics to page")  # fmt: skip
        assert (gone["labels"]["server"], gone["labels"]["instance"]) == ("prod", node.address)
        assert "powrops_prod.prom" in gone["annotations"]["description"]
        assert not prom.alerts("PowropsAlertsMissing")

        (textfiles / "powrops_staging.prom").unlink()
        site.wait_for(lambda: _firing(prom, "PowropsAlertsMissing"), "no metric at all to page")
        assert not prom.alerts("PowropsServerNotReporting")


@pytest.fixture
def drilled() -> Iterator[Site]:
    """A site with a cluster of its own (the test stops it), migrated, whose last drill
    restored with an RPO of 20 minutes against an objective of 5."""
    scratch = Site.create(recovery={"objectives": {"rto": "2h", "rpo": "5min"}},
                          alerts={"skip": UNSET_UP})  # fmt: skip
    try:
        eng = engine(scratch.settings)
        try:
            migrate.upgrade(eng)
        finally:
            eng.dispose()
        drill = {"drill_id": "d1", "rto_s": 60.0, "rpo_s": 1200.0,
                 "verification": {"data_integrity": {"ok": True}}}  # fmt: skip
        conninfo = embedded_cluster(scratch.settings).conninfo()
        with psycopg.connect(**conninfo, autocommit=True) as conn:
            journal.record(conn, "drill", drill, server="default")
        yield scratch
    finally:
        scratch.destroy()


def _textfile_after_alerts(scratch: Site, textfiles: Path, codes: tuple[int, ...]) -> str:
    done = scratch.cli("alerts", "--textfile", str(textfiles))
    assert done.returncode in codes, done.stdout + done.stderr
    return (textfiles / "powrops.prom").read_text()


@pytest.mark.pg
def test_a_stopped_database_pages_once_and_the_drill_alert_holds(
    drilled: Site, tmp_path: Path
) -> None:
    with _watching(tmp_path) as (textfiles, _, prom):
        text = _textfile_after_alerts(drilled, textfiles, (0, 1, 2))
        assert 'powrops_recoverability_evidence_read{server="default"} 1' in text, text
        assert 'powrops_drill_rpo_seconds{server="default"} 1200' in text, text
        [missed] = site.wait_for(lambda: _firing(prom, "PowropsDrillRpoOverObjective"),
                                 "the drill's missed RPO to fire")  # fmt: skip

        assert drilled.cli("db", "stop").stdout.strip() == "stopped"
        text = _textfile_after_alerts(drilled, textfiles, (3,))
        assert 'powrops_recoverability_evidence_read{server="default"} 0' in text, text
        assert 'powrops_recovery_rpo_objective_seconds{server="default"} 300' in text, text
        assert "powrops_drill_" not in text, text
        site.wait_for(lambda: not prom.query("powrops_drill_rpo_seconds"), "the drill series gone")
        [down] = site.wait_for(lambda: _firing(prom, "PowropsDatabaseUnreachable"),
                               "the unreachable database to page")  # fmt: skip
        assert down["labels"]["server"] == "default"
        [held] = _firing(prom, "PowropsDrillRpoOverObjective")
        assert held["activeAt"] == missed["activeAt"], (held, missed)
        assert not prom.alerts("PowropsUnknown", check="database")

        assert drilled.cli("db", "start").returncode == 0
        text = _textfile_after_alerts(drilled, textfiles, (0, 1, 2))
        assert 'powrops_recoverability_evidence_read{server="default"} 1' in text, text
        site.wait_for(lambda: not prom.alerts("PowropsDatabaseUnreachable") or None,
                      "the database's page to resolve")  # fmt: skip
        [again] = _firing(prom, "PowropsDrillRpoOverObjective")
        assert again["activeAt"] == missed["activeAt"]
