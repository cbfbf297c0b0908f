"""The quarterly review: what the evidence kept during a quarter says, item by item.

Nothing is re-run. The review reads what the other capabilities already left behind (see
:mod:`powrops.quarterly.evidence`, which gathers it into an :class:`Evidence`): the report
archive's ``result.json`` files, the backup catalog, and the ``ops`` history (drills and
maintenance in ``ops.events``, integrity and alert runs in ``ops.check_runs``, repairs, metric
snapshots), plus one small set-based audit of rows kept past their retention.

:func:`fleet` reviews several servers of one configuration (``servers = "all"`` in the
notebook): each server's evidence is its own (its archive ``reports/<server>/``, its backup
catalog, its rows of the ``ops`` history), each gets a :class:`Review`, and the
:class:`FleetReview` adds the summary, one row per server.

Everything below :func:`review` is a pure function of an ``Evidence``, so it is tested with a
prepared archive. Each checklist item of the strategy gets a status from its evidence and a
freshness rule: evidence no older than the item's schedule interval is OK, up to twice that is
WARNING (one run missed), older or missing is CRITICAL. Freshness is measured at the end of
the quarter, or now for the current quarter; evidence from outside the quarter does not count.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from powrops.config import DEFAULT_SERVER, load_settings
from powrops.errors import ParameterError
from powrops.findings import Finding, Graded, Severity, worst
from powrops.quarterly.evidence import gather as gather_evidence
from powrops.quarterly.model import (
    Evidence,
    Quarter,
)
from powrops.quarterly.sections import SECTION_BUILDERS, Section

if TYPE_CHECKING:
    from powrops.config import Settings

_QUARTER = re.compile(r"^\s*(\d{4})\s*-?\s*[Qq]([1-4])\s*$")


def parse_quarter(text: str | None, now: datetime | None = None) -> Quarter:
    """``"2026Q3"`` (or ``"2026-Q3"``) as a Quarter; empty means the last complete quarter.

    A quarter that has not started yet is refused: there is no evidence to review.
    """
    moment = now or datetime.now(UTC)
    if text is None or not str(text).strip():
        return Quarter.of(moment).previous()
    match = _QUARTER.match(str(text))
    if not match:
        raise ParameterError(
            f"quarter {text!r} is not a quarter: expected a year and quarter such as "
            f"'{Quarter.of(moment).previous().label}', or empty for the last complete one",
            parameter="quarter",
        )
    quarter = Quarter(int(match.group(1)), int(match.group(2)))
    if quarter.start > moment:
        raise ParameterError(
            f"quarter {quarter.label} has not started yet (today is in "
            f"{Quarter.of(moment).label}); there is no evidence to review",
            parameter="quarter",
        )
    return quarter


def gather(settings: Settings, quarter: Quarter, now: datetime | None = None) -> Evidence:
    """The evidence of ``quarter`` (see :mod:`powrops.quarterly.evidence`)."""

    return gather_evidence(settings, quarter, now)


def server_names(settings: Settings, servers: str) -> list[str]:
    """The servers a review covers: ``""`` the run's own, ``"all"`` every configured server,
    else names separated by commas (each one configured)."""
    if not isinstance(servers, str):
        raise ParameterError(f"servers must be a string (got {servers!r})", parameter="servers")
    text = servers.strip()
    if not text:
        return [settings.server]
    if text.lower() == "all":
        return list(settings.servers)
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in settings.servers]
    if unknown or not names:
        raise ParameterError(
            f"servers {servers!r}: unknown server {unknown[0] if unknown else ''!r}; expected "
            f"'all' or names from: {', '.join(settings.servers)}",
            parameter="servers",
        )
    return names


def fleet(
    settings: Settings, quarter: Quarter, servers: str = "all", now: datetime | None = None
) -> FleetReview:
    """The review of each server ``servers`` names (see :func:`server_names`), each from its
    own evidence; ``settings`` is the run's own server (whose archive keeps the review)."""
    moment = now or datetime.now(UTC)
    reviews = {}
    for name in server_names(settings, servers):
        own = settings if name == settings.server else _settings_of(settings, name)
        reviews[name] = review(gather_evidence(own, quarter, moment), server=name)
    return FleetReview(quarter, settings.server, reviews)


def review_of(settings: Settings, quarter: Quarter, servers: str = "") -> Review | FleetReview:
    """What the notebook shows: the run's own server's review, or the fleet's (``servers``
    naming others, or ``"all"`` of several)."""
    if server_names(settings, servers) == [settings.server]:
        return review(gather_evidence(settings, quarter), server=settings.server)
    return fleet(settings, quarter, servers)


def _settings_of(settings: Settings, server: str) -> Settings:
    """Another server of the same configuration file."""
    return load_settings(settings.config_file, server=server)


# --- freshness and statuses -----------------------------------------------------------------


def freshness(at: datetime | None, interval: timedelta, as_of: datetime) -> Severity:
    """OK within one schedule interval, WARNING within two, CRITICAL older or missing."""
    if at is None:
        return Severity.CRITICAL
    age = as_of - at
    if age <= interval:
        return Severity.OK
    return Severity.WARNING if age <= 2 * interval else Severity.CRITICAL


def outcome(status: str | None) -> Severity:
    """A piece of evidence's own status; a run that could not judge (UNKNOWN) proves nothing."""
    try:
        sev = Severity.parse(status or "UNKNOWN")
    except ValueError:
        sev = Severity.UNKNOWN
    return Severity.CRITICAL if sev == Severity.UNKNOWN else sev


def _age(at: datetime | None, as_of: datetime) -> str:
    """When a piece of evidence was taken, against the end of the review; after it only for
    what the review reads itself (the rows past retention)."""
    if at is None:
        return "none in the quarter"
    days = abs((as_of - at).total_seconds()) / 86400
    when = at.strftime("%Y-%m-%d %H:%M UTC")
    if at > as_of:
        return f"{when} ({days:.1f} days after {as_of:%Y-%m-%d}, read by this review)"
    return f"{when} ({days:.1f} days before {as_of:%Y-%m-%d})"


def _interval_text(interval: timedelta) -> str:
    days = interval.total_seconds() / 86400
    return f"{days:g} days" if days >= 1 else f"{interval.total_seconds() / 3600:g} h"


# --- the checklist --------------------------------------------------------------------------


@dataclass(frozen=True)
class ChecklistItem:
    """One line of the strategy's checklist with its status and the evidence for it."""

    group: str
    item: str
    status: Severity
    evidence: str
    at: datetime | None = None
    link: str | None = None  # the proving report, relative to the reports directory

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "_", self.item.lower()).strip("_")

    def to_dict(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "item": self.item,
            "status": self.status.name,
            "evidence": self.evidence,
            "at": self.at.isoformat() if self.at else None,
            "link": self.link,
        }


def _item(
    ev: Evidence,
    group: str,
    item: str,
    what: str,
    at: datetime | None,
    interval: timedelta,
    *,
    status: str | None = "OK",
    link: str | None = None,
    extra: Iterable[tuple[Severity, str]] = (),
) -> ChecklistItem:
    """An item judged by freshness, the evidence's own status, and extra conditions."""
    fresh = freshness(at, interval, ev.as_of)
    parts = [f"{what}: {_age(at, ev.as_of)}"]
    if fresh != Severity.OK:
        limit = "missing" if at is None else f"older than {_interval_text(interval)}"
        parts.append(f"evidence {limit} ({fresh.name})")
    status_sev = outcome(status) if at is not None else Severity.OK
    if at is not None and status_sev != Severity.OK:
        parts.append(f"its status is {status}")
    extras = list(extra)
    parts.extend(text for _, text in extras)
    severity = worst([fresh, status_sev, *(sev for sev, _ in extras)])
    return ChecklistItem(group, item, severity, "; ".join(parts), at, link)


def _run_item(
    ev: Evidence, group: str, item: str, report: str, interval: timedelta, what: str
) -> ChecklistItem:
    run = ev.latest_run(report)
    return _item(
        ev,
        group,
        item,
        f"{what} ({report})",
        run.started_at if run else None,
        interval,
        status=run.status if run else None,
        link=run.html if run else None,
    )


def checklist(ev: Evidence) -> list[ChecklistItem]:
    """The strategy's implementation checklist and quarterly review items, judged."""
    return [
        *_initial_setup(ev),
        *_regular_maintenance(ev),
        *_quarterly_items(ev),
    ]


def _initial_setup(ev: Evidence) -> list[ChecklistItem]:
    group = "Initial Setup"
    iv = ev.intervals
    full = ev.latest_backup(kind="full", ok=True)
    backup_extra = []
    if full is None or full.started_at < ev.as_of - 2 * iv["backup_full"]:
        backup_extra.append((Severity.CRITICAL, "no successful full backup within the schedule"))
    configure = _run_item(
        ev,
        group,
        "Configure backup system",
        "readiness_report",
        iv["quarterly"],
        "readiness checks",
    )
    configure = _merge(configure, backup_extra)
    alerts = ev.latest_check("alerts")
    return [
        configure,
        _item(
            ev,
            group,
            "Set up monitoring",
            "alert thresholds evaluated (ops.check_runs)",
            alerts.started_at if alerts else None,
            iv["alerts"],
            status=alerts.status if alerts else None,
        ),
        _item(
            ev,
            group,
            "Create maintenance scripts",
            "maintenance run (ops.events)",
            _latest_event_at(ev, ("maintenance",)),
            iv["vacuum"],
        ),
        _run_item(
            ev,
            group,
            "Document recovery procedures",
            "recovery_drill",
            iv["quarterly"],
            "recovery runbook executed",
        ),
    ]


def _regular_maintenance(ev: Evidence) -> list[ChecklistItem]:
    group = "Regular Maintenance"
    iv = ev.intervals
    integrity = ev.latest_check("integrity")
    integrity_run = ev.latest_run("integrity_report")
    at, status, link = None, None, None
    if integrity is not None:
        at, status = integrity.started_at, integrity.status
    if integrity_run is not None and (at is None or integrity_run.started_at >= at):
        at, status = integrity_run.started_at, integrity_run.status
    if integrity_run is not None:
        link = integrity_run.html
    stats_at = ev.analyzed_at if ev.in_quarter(ev.analyzed_at) else None
    analyzed = max(
        (t for t in (_latest_event_at(ev, ("maintenance",), "analyze"), stats_at) if t),
        default=None,
    )
    cleanup_link = ev.latest_run("retention_report")
    return [
        _run_item(
            ev,
            group,
            "Review backup success",
            "backup_verification",
            iv["verification"],
            "backup verification",
        ),
        _item(
            ev,
            group,
            "Check data integrity",
            "integrity checks",
            at,
            iv["integrity"],
            status=status,
            link=link,
        ),
        _item(
            ev,
            group,
            "Update statistics",
            "ANALYZE (maintenance or autovacuum)",
            analyzed,
            iv["analyze"],
        ),
        _item(
            ev,
            group,
            "Clean up old data",
            "cleanup, retention or archival run (ops.events)",
            _latest_event_at(ev, ("cleanup", "retention", "archive")),
            iv["cleanup"],
            link=cleanup_link.html if cleanup_link else None,
            extra=_retention_extra(ev, cleanup_only=True),
        ),
    ]


def _quarterly_items(ev: Evidence) -> list[ChecklistItem]:
    group = "Quarterly Review"
    iv = ev.intervals
    retention_run = ev.latest_run("retention_report")
    audit_at = ev.retention_audited_at if ev.retention is not None else None
    snapshots = ev.in_quarter_snapshots()
    snapshot = snapshots[-1].taken_at if snapshots else None
    growth = ev.latest_run("growth_report")
    drill_at, drill_status = ev.latest_drill()
    drill_run = ev.latest_run("recovery_drill")
    return [
        _item(
            ev,
            group,
            "Audit retention policies",
            "retention audit (rows past retention)",
            audit_at,
            iv["retention"],
            link=retention_run.html if retention_run else None,
            extra=_retention_extra(ev, cleanup_only=False),
        ),
        _item(
            ev,
            group,
            "Review performance metrics",
            "metric snapshot (ops.metric_snapshots)",
            snapshot,
            iv["growth"],
            link=growth.html if growth else None,
        ),
        _run_item(
            ev,
            group,
            "Update documentation",
            "readiness_report",
            iv["quarterly"],
            "live setup checked against the strategy",
        ),
        _item(
            ev,
            group,
            "Test recovery procedures",
            "recovery drill (ops.events)",
            drill_at,
            iv["drill"],
            status=drill_status,
            link=drill_run.html if drill_run else None,
        ),
    ]


def _merge(item: ChecklistItem, extra: list[tuple[Severity, str]]) -> ChecklistItem:
    if not extra:
        return item
    text = "; ".join([item.evidence, *(t for _, t in extra)])
    status = worst([item.status, *(s for s, _ in extra)])
    return ChecklistItem(item.group, item.item, status, text, item.at, item.link)


def _latest_event_at(
    ev: Evidence, kinds: tuple[str, ...], action: str | None = None
) -> datetime | None:
    found = [e.at for e in ev.in_quarter_events(kinds) if action is None or e.mentions(action)]
    return max(found, default=None)


CLEANUP_TABLES = frozenset({"temp_data", "cache_entries", "sessions"})


def _retention_extra(ev: Evidence, *, cleanup_only: bool) -> list[tuple[Severity, str]]:
    if ev.retention is None:
        return [(Severity.CRITICAL, "the retention audit could not run")]
    rows = [r for r in ev.retention if (r.table in CLEANUP_TABLES) == cleanup_only]
    past = [r for r in rows if r.rows_past > 0]
    if not past:
        return []
    worst_sev = (
        Severity.CRITICAL if any(r.policy.endswith("deleted") for r in past) else (Severity.WARNING)
    )
    text = ", ".join(f"{r.policy}: {r.rows_past} rows" for r in past)
    return [(worst_sev, f"rows kept past their retention: {text}")]


# The section figures worth a place in the archive index (the rest is in the report).
HEADLINE_KEYS = frozenset(
    {
        "backup_success_pct",
        "backup_failures",
        "drills",
        "last_rto_s",
        "integrity_failures",
        "failed_checks",
        "rows_past_retention",
        "forecast_bytes",
        "alerts_raised",
    }
)

# --- the review -----------------------------------------------------------------------------


@dataclass
class Review(Graded):
    """The whole review: sections, checklist, and what the notebook and index show."""

    quarter: Quarter
    as_of: datetime
    sections: dict[str, Section]
    items: list[ChecklistItem]
    problems: list[str] = field(default_factory=list)  # evidence that could not be read
    #: The headline figures of the previous quarter's archived review (None: none archived).
    previous: dict[str, Any] | None = None
    #: The server reviewed (its archive holds the run when it reviews itself alone).
    server: str = DEFAULT_SERVER

    def graded(self) -> list[Finding]:
        return self.findings()

    def findings(self) -> list[Finding]:
        found = [
            Finding(
                f"checklist.{i.slug}",
                i.status,
                f"{i.item}: {i.evidence}",
                object=i.link,
                details={"group": i.group},
            )
            for i in self.items
        ]
        found += [
            Finding(f"section.{s.key}", s.status, f"{s.title}: {s.summary}")
            for s in self.sections.values()
        ]
        found += [Finding("evidence", Severity.CRITICAL, p) for p in self.problems]
        return found

    def figures(self) -> dict[str, Any]:
        tally = Counter(i.status.name for i in self.items)
        figures: dict[str, Any] = {
            "quarter": self.quarter.label,
            "checklist_ok": tally.get("OK", 0),
            "checklist_warning": tally.get("WARNING", 0),
            "checklist_critical": tally.get("CRITICAL", 0),
        }
        for section in self.sections.values():
            figures.update({k: v for k, v in section.headline.items() if k in HEADLINE_KEYS})
        return figures

    def to_dict(self) -> dict[str, Any]:
        return {
            "quarter": self.quarter.label,
            "as_of": self.as_of.isoformat(),
            "status": self.status.name,
            "checklist": [i.to_dict() for i in self.items],
            "sections": {k: s.to_dict() for k, s in self.sections.items()},
            "problems": self.problems,
        }


def review(ev: Evidence, server: str = DEFAULT_SERVER) -> Review:
    """The review of the evidence (of ``server``): every section and every checklist item."""
    sections = {key: build(ev) for key, build in SECTION_BUILDERS.items()}
    return Review(
        ev.quarter,
        ev.as_of,
        sections,
        checklist(ev),
        list(ev.problems),
        previous_figures(ev),
        server,
    )


@dataclass
class FleetReview(Graded):
    """The review of several servers: one :class:`Review` per server and the fleet summary.

    ``home`` is the server whose archive keeps the run (links are relative to it)."""

    quarter: Quarter
    home: str
    reviews: dict[str, Review]

    def graded(self) -> list[Finding]:
        return self.findings()

    def findings(self) -> list[Finding]:
        """Every server's findings, each check and message prefixed with its server."""
        return [
            replace(
                f,
                check=f"{name}.{f.check}",
                message=f"{name}: {f.message}",
                details={**f.details, "server": name},
            )
            for name, r in self.reviews.items()
            for f in r.findings()
        ]

    def summary_rows(self) -> list[dict[str, Any]]:
        """One row per server: its status, checklist tally, problems and each section's
        status."""
        rows = []
        for name, r in self.reviews.items():
            tally = summary_counts(r.items)
            row: dict[str, Any] = {"server": name, "status": r.status.name}
            row.update({f"checklist {k}": n for k, n in tally.items()})
            row["evidence problems"] = len(r.problems)
            row.update({s.title: s.status.name for s in r.sections.values()})
            rows.append(row)
        return rows

    def figures(self) -> dict[str, Any]:
        """The fleet's headline figures: servers per status, then each server's figures as
        ``<server>.<figure>`` (figures are flat)."""
        tally = Counter(r.status.name for r in self.reviews.values())
        figures: dict[str, Any] = {
            "quarter": self.quarter.label,
            "servers": len(self.reviews),
            "servers_ok": tally.get("OK", 0),
            "servers_warning": tally.get("WARNING", 0),
            "servers_critical": tally.get("CRITICAL", 0) + tally.get("UNKNOWN", 0),
        }
        for name, r in self.reviews.items():
            figures.update({f"{name}.{k}": v for k, v in r.figures().items() if k != "quarter"})
        return figures

    def to_dict(self) -> dict[str, Any]:
        return {
            "quarter": self.quarter.label,
            "home": self.home,
            "status": self.status.name,
            "summary": self.summary_rows(),
            "servers": {name: r.to_dict() for name, r in self.reviews.items()},
        }


def previous_figures(ev: Evidence) -> dict[str, Any] | None:
    """The figures the newest archived review of the previous quarter recorded."""
    label = ev.quarter.previous().label
    found = [
        r for r in ev.runs
        if r.name == "quarterly_review" and not r.failed and r.figures.get("quarter") == label
        and "servers" not in r.figures  # a fleet review's figures are per server
    ]  # fmt: skip
    if not found:
        return None
    return dict(max(found, key=lambda r: r.started_at).figures)


def summary_counts(items: Iterable[ChecklistItem]) -> Mapping[str, int]:
    tally = Counter(i.status.name for i in items)
    return {
        s.name: tally.get(s.name, 0) for s in (Severity.OK, Severity.WARNING, Severity.CRITICAL)
    }
