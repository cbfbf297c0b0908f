"""The one formatting layer: every figure a reader meets, in units and words."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from powrops.format import (
    human_bool,
    human_bytes,
    human_count,
    human_days,
    human_duration,
    human_finding_value,
    human_label,
    human_number,
    human_percent,
    human_rate,
    human_ratio,
    human_rows,
    human_seconds,
    human_time,
    human_value,
)
from powrops.reports.index import build_index
from readable import machine_values


def test_sizes_and_rates_in_binary_units() -> None:
    assert human_bytes(17684159) == "16.9 MiB"
    assert human_bytes(40 * 1024 * 1024) == "40.0 MiB"
    assert human_rate(25088.3) == "24.5 KiB/day"
    assert human_rate(-2 * 1024**2) == "-2.0 MiB/day"


def test_durations() -> None:
    assert human_duration(45) == "45 s"
    assert human_duration(3 * 3600 + 12 * 60) == "3 h 12 min"
    assert human_duration(2 * 86400 + 3 * 3600) == "2 d 3 h"


def test_measured_seconds_keep_their_precision() -> None:
    assert human_seconds(0.372) == "0.37 s" and human_seconds(3.21) == "3.2 s"
    assert human_seconds(45.3) == "45 s" and human_seconds(600) == "10 min"


def test_query_rows_read_as_values() -> None:
    assert human_rows([[50]]) == "50"
    assert human_rows([[1234567]]) == "1,234,567"
    assert human_rows([["20241204090000", True]]) == "20241204090000, yes"
    assert human_rows([]) == "no rows"
    assert human_rows([[i] for i in range(7)]) == "7 rows: 0; 1; 2; 3; 4; ... (2 more)"


def test_ratios_and_percentages() -> None:
    assert human_ratio(0.999902) == "99.99 %"
    assert human_ratio(0.8571) == "85.7 %"
    assert human_ratio(1) == "100 %" and human_ratio(0) == "0 %"
    assert human_ratio(0.0042) == "0.42 %"
    assert human_percent(43.21) == "43.2 %"


def test_counts_and_numbers_never_in_exponent_notation() -> None:
    assert human_count(17684159) == "17,684,159"
    assert human_count(2.5) == "2.5"
    assert human_number(1.21895e06) == "1,218,950"
    assert human_number(3.14159) == "3.14"
    assert human_number(0.00042) == "0.0004"
    assert human_number(1e-9) == "less than 0.0001"
    for value in (1e-9, 1.21895e06, 1e300, 123456789.123):
        assert not re.search(r"\de", human_number(value)), value


def test_days_ahead() -> None:
    assert human_days(1.21895e06) == "not within a century"
    assert human_days(float("inf")) == "not within a century"
    assert human_days(1) == "1 day" and human_days(12.4) == "12 days"
    assert human_days(800) == "2.2 years"
    assert human_days(0.5) == "12 h"
    assert human_days(None) == "-"


def test_booleans_and_times() -> None:
    assert human_bool(True) == "yes" and human_bool(False) == "no" and human_bool(None) == "-"
    assert human_bool(True, yes="passed", no="failed") == "passed"
    moment = datetime(2026, 12, 3, 17, 53, 2, 166788, tzinfo=timezone(timedelta(hours=1)))
    assert human_time(moment) == "2026-12-03 16:53:02 UTC"


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        ("days_to_warning", 1.21895e06, "not within a century"),
        ("days_to_warning", None, "-"),
        ("total_bytes", 17684159, "16.9 MiB"),
        ("forecast_bytes", 2.3e7, "21.9 MiB"),
        ("growth_bytes_per_day", 25088.3, "24.5 KiB/day"),
        ("cache_hit_rate", 0.999902, "99.99 %"),
        ("dead_tuple_ratio", 0.8571, "85.7 %"),
        ("disk_percent", 43.21, "43.2 %"),
        ("backup_success_pct", 100.0, "100 %"),
        ("test_restore", True, "yes"),
        ("target", "2026-12-03T16:53:02.166788+00:00", "2026-12-03 16:53:02 UTC"),
        ("finished_at", "2026-12-03 16:53:02+00:00", "2026-12-03 16:53:02 UTC"),
        ("rto_s", 192.4, "3 min"),
        ("duration_s", 3.21, "3.2 s"),
        ("rpo_s", 0.372, "0.37 s"),
        ("rows_due", 1234567, "1,234,567"),
        ("port", 57325, "57325"),
        ("run_id", 12345, "12345"),
        ("bytes_reclaimed", 2338, "2.3 KiB"),
        ("quarter", "2026-Q4", "2026-Q4"),
        ("backup", "20261203T165302F", "20261203T165302F"),
        ("server_version", "18.1", "18.1"),
        ("ratio_of_nothing", 0.5, "0.5"),
        ("alerts", [], "none"),
        ("counts", {"ok": 3, "bad_rate": 0.5}, "OK 3, bad rate 50 %"),
    ],
)
def test_human_value_dispatches_on_the_key(key: str, value: Any, shown: str) -> None:
    assert human_value(key, value) == shown


def test_labels_are_words() -> None:
    assert human_label("growth_bytes_per_day") == "growth per day"
    assert human_label("total_bytes") == "total"
    assert human_label("days_to_warning") == "days to warning"
    assert human_label("rto_s") == "RTO"
    assert human_label("finished_at") == "finished"
    assert human_label("wal_checked") == "WAL checked" and human_label("last_rto_s") == "last RTO"
    assert human_label("integrity_failures") == "integrity runs with violations"


def test_the_checker_finds_every_machine_value() -> None:
    planted = {
        "1.21895e+06": "exponent",
        "2026-12-03T16:53:02": "ISO",
        "16:53:02.166788": "fractional",
        "test_restore: True": "literal",
        "datetime.datetime(2026, 1, 1)": "datetime",
        "[[50]]": "nested",
        "{'a': 1}": "dict",
        "Out[3]:": "prompt",
        "Result recorded: OK": "record",
    }
    for text, what in planted.items():
        assert machine_values(f"<p>{text}</p>"), what
    assert machine_values("16.9 MiB, 99.99 %, yes, 2026-12-03 16:53:02 UTC, Trueman") == []


#: Headline figures as the demo's reports record them (keys and raw values of each view's
#: ``figures``), the values the index used to print as they were.
DEMO_FIGURES: dict[str, dict[str, Any]] = {
    "growth_report": {
        "total_bytes": 17684159,
        "growth_bytes_per_day": 25088.3,
        "growth_source": "history",
        "days_to_warning": 1218950.4,
        "disk_percent": 43.21,
        "dead_tuple_ratio": 0.0123,
        "cache_hit_rate": 0.999902,
        "alerts": 0,
    },
    "backup_verification": {
        "backups": 2,
        "ok_backups": 2,
        "files_checked": 1834,
        "wal_checked": 12,
        "gaps": 0,
        "test_restore": True,
        "duration_s": 3.21,
    },
    "recovery_drill": {
        "rto_s": 45.3,
        "rpo_s": 0.8,
        "backup": "20261203T165302F",
        "chain_length": 1,
        "target": "2026-12-03T16:53:02.166788+00:00",
        "finished_at": "2026-12-03T16:54:11.020301+00:00",
    },
    "quarterly_review": {
        "quarter": "2026-Q4",
        "checklist_ok": 5,
        "backup_success_pct": 100.0,
        "last_rto_s": 45.3,
        "forecast_bytes": 2.3e7,
        "integrity_failures": 0,
    },
    "retention_report": {"rows_due": 1234567, "archive_files": 3, "run_errors": 0},
    "integrity_report": {"failed_checks": 2, "orphaned_records": 5, "run_id": 7},
}


def _write_runs(reports: Path) -> None:
    started = datetime(2026, 12, 3, 16, 53, 2, 166788, tzinfo=UTC)
    target = {"database": "powr", "host": "127.0.0.1", "port": 5432, "embedded": True}
    for offset, (name, figures) in enumerate(DEMO_FIGURES.items()):
        run_id = (started + timedelta(minutes=offset)).strftime("%Y%m%dT%H%M%SZ")
        run = reports / name / run_id
        run.mkdir(parents=True)
        result = {
            "name": name,
            "run_id": run_id,
            "status": "OK",
            "started_at": (started + timedelta(minutes=offset)).isoformat(),
            "finished_at": (started + timedelta(minutes=offset, seconds=12)).isoformat(),
            "duration_s": 12.345678,
            "target": target,
            "figures": figures,
            "findings": [],
        }
        (run / "result.json").write_text(json.dumps(result))
        (run / "report.html").write_text("<html></html>")


def test_index_shows_units_and_words_and_result_json_keeps_raw_values(tmp_path: Path) -> None:
    _write_runs(tmp_path)
    index = build_index(tmp_path).read_text(encoding="utf-8")
    assert machine_values(index) == []
    for raw in ("17684159", "0.999902", "25088.3", "1.21895e+06", "True", "166788"):
        assert raw not in index, raw
    for shown in (
        "16.9 MiB",
        "24.5 KiB/day",
        "not within a century",
        "99.99 %",
        "test restore: <b>yes</b>",
        "target: <b>2026-12-03 16:53:02 UTC</b>",
        "1,234,567",
        "RTO: <b>45 s</b>",
    ):
        assert shown in index, shown
    latest = index.split("id='latest'", 1)[1].split("</table>", 1)[0]
    assert latest.count("powr on 127.0.0.1:5432 (embedded)") == len(DEMO_FIGURES)
    catalog = json.loads((tmp_path / "catalog.json").read_text())
    growth = next(r for r in catalog["runs"] if r["name"] == "growth_report")
    assert growth["figures"]["total_bytes"] == 17684159
    assert growth["figures"]["cache_hit_rate"] == 0.999902


def test_report_tables_show_words_and_say_none_when_empty() -> None:
    from powrops.reports.display import table_html

    empty = table_html([], caption="Slow queries")
    assert "<i>none</i>" in empty and "Slow queries" in empty
    header_only = table_html(EmptyFrame(), caption="Dead tuples")
    assert 'colspan="2"><i>none</i>' in header_only
    filled = table_html(
        [{"ok": True, "ratio": 1.21895e-06, "at": datetime(2026, 1, 1, tzinfo=UTC)}]
    )
    assert machine_values(filled) == [] and "yes" in filled and "2026-01-01 00:00:00 UTC" in filled
    plan = table_html([{"item": "chain", "value": ["20261201T030000F", "20261202T030000I"]},
                       {"item": "ends", "value": "2026-12-03T16:53:02.166788+00:00"}])  # fmt: skip
    assert machine_values(plan) == [] and "20261201T030000F, 20261202T030000I" in plan


class EmptyFrame:
    """Stands in for an empty DataFrame."""

    columns = ("relation", "ratio")

    def itertuples(self, index: bool, name: Any) -> list[tuple[Any, ...]]:
        return []


def test_growth_text_has_units_and_words() -> None:
    from powrops.growth.view import growth_lines

    data = {
        "source": "timestamps", "points": 28, "current_bytes": 17684159,
        "rate_bytes_per_day": 24549.32937543952, "rate_band": [20000.5, 29098.1],
        "disk": {"used_bytes": 185_000_000_000, "capacity_bytes": 400_000_000_000,
                 "percent": 46.25, "source": "filesystem"},
        "size_in_a_year_bytes": 26644263.0, "needed_in_a_year_bytes": 185_008_960_104.0,
        "days_to_warning": 1218950.4, "date_warning": None,
        "days_to_critical": 400.2, "date_critical": "2028-01-07",
        "days_to_warning_earliest": 1000000.0, "days_to_critical_earliest": 300.0,
        "rates_by_source": {"timestamps": 24549.32937543952, "snapshots": None},
        "notes": ["2 snapshots: the trend needs 3"],
    }  # fmt: skip
    text = "\n".join(growth_lines(data))
    assert machine_values(text) == [], text
    for raw in ("24549.3", "17684159", "{", "None", "1218950"):
        assert raw not in text, raw
    assert "24.0 KiB/day (estimated from the data's own timestamps, 28 points)" in text
    assert "16.9 MiB" in text and "46.2 % used: 172.3 GiB of 372.5 GiB (filesystem)" in text
    assert "warning disk usage  not within a century\n" in text
    assert (
        "critical disk usage in 1.1 years (about 2028-01-07), at the earliest in 300 days" in text
    )
    assert "not only this database" in text and "note: 2 snapshots" in text
    none = "\n".join(growth_lines({"source": "none", "points": 0, "current_bytes": 0}))
    assert "growth              - (no trend yet, 0 points)" in none


#: The disk pre-check's message: free space in binary units, then the estimate (a third of the
#: 120 MiB the server reports) in MiB, not as "0.0 GiB".
DISK_MESSAGE = re.compile(r"\d+(\.\d)? (B|KiB|MiB|GiB|TiB|PiB) free, backup estimated at 40\.0 MiB")


def test_disk_pre_check_speaks_binary_units(tmp_path: Path) -> None:
    from powrops.backup.run import ServerFacts, _check_disk
    from powrops.backup.steps import Step

    facts = ServerFacts(180000, "18.0", "replica", "on", "on", 10, 0, 100, 3, 120 * 2**20, "1", "p")
    step = Step("pre", "disk space")
    _check_disk(tmp_path.as_uri(), facts, None, step)
    assert DISK_MESSAGE.fullmatch(step.message), step.message
    # whatever the machine has free ("70.0 GiB" too), and nothing else
    assert DISK_MESSAGE.fullmatch("70.0 GiB free, backup estimated at 40.0 MiB")
    for wrong in (
        "73.4 GB free, backup estimated at 40.0 MiB",
        "75161927680 free, backup estimated at 40.0 MiB",
        "70.0 GiB free, backup estimated at 0.0 GiB",
    ):
        assert not DISK_MESSAGE.fullmatch(wrong), wrong


def test_attention_lists_only_what_is_not_ok_or_says_nothing() -> None:
    from powrops.findings import Finding, Severity
    from powrops.reports.display import attention_html

    ok = [Finding(f"check.{i}", Severity.OK, f"fine {i}") for i in range(14)]
    calm = attention_html(ok)
    assert "Nothing needs attention: all 14 checks are OK." in calm and "<table" not in calm
    bad = Finding("wal", Severity.WARNING, "late WAL", advice="run `powrops wal push`")
    page = attention_html([*ok, bad])
    assert "late WAL" in page and "fine 3" not in page and "OK</span>" not in page
    assert "<code>powrops wal push</code>" in page and "`" not in page


def test_advice_renders_as_formatted_text() -> None:
    from powrops.reports.display import inline_markup, steps_html

    page = steps_html(["WARNING orphans: run `powrops check integrity --repair` <now>"])
    assert page.startswith("<ul") and "<pre" not in page
    assert "<code>powrops check integrity --repair</code> &lt;now&gt;" in page
    assert inline_markup("an odd ` tick") == "an odd ` tick"
    assert "Nothing to do" in steps_html([])


def test_header_shows_period_and_parameters_as_words() -> None:
    from powrops.reports.html import ReportHeader, header_html

    bar = header_html(
        ReportHeader(
            "growth_report", started_at="2026-12-03T16:53:02.166+00:00", duration_s=0.42,
            parameters={"restore": True, "config_path": "", "trend_days": 90},
            target="powr on 127.0.0.1:5432", period="2026Q4: 2026-10-01 to 2026-12-31 (UTC)",
        )
    )  # fmt: skip
    assert "covers 2026Q4: 2026-10-01 to 2026-12-31 (UTC)" in bar
    assert "database powr on 127.0.0.1:5432" in bar
    assert "started 2026-12-03 16:53:02 UTC" in bar and "took 0.42 s" in bar
    assert "restore: yes; config_path: (empty); trend_days: 90" in bar
    assert machine_values(bar) == []


def test_recorded_result_shows_nothing_in_a_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from powrops.reports.record import RUN_DIR_ENV, record

    monkeypatch.setenv(RUN_DIR_ENV, str(tmp_path))
    result = record(figures={"n": 1}, period="the server as of now")
    result._ipython_display_()
    assert capsys.readouterr().out == ""
    assert json.loads((tmp_path / "result.json").read_text())["period"] == "the server as of now"
    monkeypatch.delenv(RUN_DIR_ENV)
    record()._ipython_display_()
    assert "Not recorded" in capsys.readouterr().out


def test_smoke_queries_are_named_by_what_they_ask() -> None:
    from powrops.verify.view import query_name, restore_rows

    assert query_name('SELECT count(*) FROM public."workout_sets"') == "rows in workout_sets"
    assert query_name("SELECT version_num FROM ops.alembic_version") == "schema revision"
    assert query_name("SELECT 1") == "server answers"
    assert query_name("SELECT now()") == "SELECT now()"

    from types import SimpleNamespace

    queries = [{"sql": 'SELECT count(*) FROM public."users"', "rows": [[50]]},
               {"sql": "SELECT 2", "error": "boom"}]  # fmt: skip
    report = SimpleNamespace(
        test_restore={"label": "x", "ok": True, "timings": {"total_s": 7.7}, "queries": queries}
    )

    rows = {r["item"]: r["value"] for r in restore_rows(report)}  # type: ignore[arg-type]
    assert rows["rows in users"] == "50" and rows["SELECT 2"] == "error: boom"
    assert rows["total"] == "7.7 s"


@pytest.mark.parametrize(
    ("check", "value", "shown"),
    [
        ("wal_size", 100663681, "96.0 MiB"),
        ("backup_freshness", 508.1, "8 min"),
        ("backup", 1246, "20 min"),  # a migration's safeguard: the newest backup's age
        ("disk_usage", 81.23, "81.2 %"),
        ("table_size", 57344, "56.0 KiB"),
        ("disk_forecast", 12.0, "12 days"),
        ("strategy_index", "btree (user_id)", "btree (user_id)"),
    ],
)
def test_a_findings_value_is_shown_in_its_checks_unit(
    check: str, value: object, shown: str
) -> None:
    from powrops.findings import Finding, Severity
    from powrops.reports.display import findings_html

    assert human_finding_value(check, value) == shown
    html = findings_html([Finding(check, Severity.WARNING, "m", value=value)])
    assert f">{shown}</td>" in html


def test_sql_cells_are_code_and_tables_wrap_and_skip_mathematics() -> None:
    from powrops.reports.display import table_html

    html = table_html([{"statement": "SELECT $1 < $2", "calls": 3}], code=("statement",))
    assert '<pre style="white-space:pre-wrap' in html and "<code>SELECT $1 &lt; $2</code>" in html
    assert 'class="tex2jax_ignore mathjax_ignore"' in html and "overflow-wrap:anywhere" in html


def test_maintenance_and_cleanup_tables_show_units_and_say_what_was_left_alone() -> None:
    from powrops.growth.view import plan_notes
    from powrops.maintenance.actions import MaintenanceRun, Target

    run = MaintenanceRun("vacuum", False, [Target("public", "t", "dead", 57344, 90112)])
    run.unplanned = ["public.sessions"]
    row = run.rows()[0]
    assert (row["size before"], row["size after"]) == ("56.0 KiB", "88.0 KiB")
    assert run.to_dict()["targets"][0]["before_bytes"] == 57344  # result.json keeps raw values
    (note,) = plan_notes(run)
    assert note.startswith("Changed since the dry run: public.sessions became due")


def test_space_that_grew_meanwhile_is_not_shown_as_negative_space_freed() -> None:
    """A place that grew while maintenance freed space elsewhere (other writers on a shared
    file system) freed none; it is not shown as a negative amount."""
    from powrops.growth.gather import space_freed

    before = [{"where": "this database", "size": "10.0 MiB", "bytes": 10 << 20},
              {"where": "file system used", "size": "1.0 GiB", "bytes": 1 << 30},
              {"where": "pg_wal", "size": "-", "bytes": None}]  # fmt: skip
    after = [{"where": "this database", "bytes": 4 << 20},
             {"where": "file system used", "bytes": (1 << 30) + (385 << 20)}]  # fmt: skip
    freed = {r["where"]: r["freed"] for r in space_freed(before, after)}
    assert freed == {"this database": "6.0 MiB", "pg_wal": "-",
                     "file system used": "none (grew by 385.0 MiB meanwhile)"}  # fmt: skip
