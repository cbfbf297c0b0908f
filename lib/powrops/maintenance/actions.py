"""Maintenance per the strategy's schedule and thresholds: vacuum, analyze, reindex, rebuild.

* ``vacuum`` — tables whose dead tuples reach ``alerts.dead_tuples.warning`` (with at least
  ``MIN_DEAD_TUPLES`` dead rows), and tables with dead rows whose last vacuum (manual or auto)
  is older than ``maintenance.vacuum`` ("weekly"). ``VACUUM (ANALYZE)`` each.
* ``analyze`` — tables never analyzed (with rows), analyzed longer ago than
  ``maintenance.analyze`` ("daily") and modified since, or with more than ``STALE_FRACTION`` of
  their rows modified since the last analyze. ``ANALYZE`` each.
* ``reindex`` — invalid indexes, and B-tree indexes of at least ``MIN_BLOAT_BYTES`` whose
  ``pgstatindex`` leaf density is under ``MIN_LEAF_DENSITY`` % (bloated).
  ``REINDEX INDEX CONCURRENTLY`` each (no lock blocking writes). ``pgstatindex`` reads the whole
  index, so only indexes over the size floor are measured. A REINDEX that fails leaves an
  invalid ``<index>_ccnew``: it is dropped at once (``DROP INDEX CONCURRENTLY``), and such
  leftovers found later are dropped instead of rebuilt.
* ``rebuild`` — tables whose free space, estimated from catalog statistics as the
  ``table_bloat`` alert does, is at least ``MIN_BLOAT_BYTES`` and ``alerts.bloat_min_percent``
  of the table. ``VACUUM (FULL, ANALYZE)`` each: it gives the space back to the operating
  system, but holds an ACCESS EXCLUSIVE lock (no read, no write) while it copies the table,
  and needs room for the copy. Only ever run after its dry run, behind its own confirmation.
* the index strategy's checks are in :mod:`.indexes`.

``vacuum`` and ``analyze`` leave to autovacuum, and name, the due tables of the ``ops`` schema
the role may not maintain: powrops' history belongs to the role that migrated, not to
``powr_owner``, which maintains it only with MAINTAIN (PostgreSQL 17's ``pg_maintain``).

Each action returns a :class:`MaintenanceRun` (what was planned and done, bytes reclaimed,
errors) and is recorded in ``ops.events`` (kind ``maintenance``; details: action, tables,
reclaimed_bytes, dry_run, errors). ``dry_run`` plans and records but changes nothing; on a
read-only database or a standby it plans all the same and says its journal row was skipped
(``MaintenanceRun.journal_skipped``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from powrops import journal
from powrops.alerts import server_checks
from powrops.config import Settings
from powrops.db import connect
from powrops.errors import ParameterError
from powrops.findings import Graded, Severity
from powrops.format import Echo, human_bytes, human_seconds
from powrops.maintenance.indexes import INDEX_SQL
from powrops.metrics.snapshot import database_errors
from powrops.pg import catalog
from powrops.tables import OPS_SCHEMA

MIN_DEAD_TUPLES = 50
STALE_FRACTION = 0.10
MIN_LEAF_DENSITY = 50.0
MIN_BLOAT_BYTES = 1 << 20
ACTIONS = ("vacuum", "analyze", "reindex", "rebuild")
LEFTOVER = re.compile(r"_cc(new|old)[0-9]*$")


@dataclass
class Target:
    """One table or index an action applies to, and why."""

    schema: str
    name: str
    reason: str
    before_bytes: int = 0
    after_bytes: int | None = None
    dead_before: int | None = None
    dead_after: int | None = None
    seconds: float | None = None
    error: str | None = None
    drop: bool = False  # a leftover of a failed REINDEX CONCURRENTLY: dropped, not rebuilt

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def reclaimed(self) -> int:
        return 0 if self.after_bytes is None else max(self.before_bytes - self.after_bytes, 0)


@dataclass
class MaintenanceRun(Graded):
    action: str
    dry_run: bool
    targets: list[Target] = field(default_factory=list)
    event_id: int | None = None
    # Objects due when the action ran that the confirmed dry run had not listed: left alone.
    unplanned: list[str] = field(default_factory=list)
    # Why a dry run's journal row was not written (a read-only database, a standby).
    journal_skipped: str | None = None
    # Due tables of the ops schema this role may not maintain (their owner is the role that
    # migrated): left to autovacuum, named.
    left_to_autovacuum: list[str] = field(default_factory=list)

    @property
    def reclaimed_bytes(self) -> int:
        return sum(t.reclaimed for t in self.targets)

    @property
    def errors(self) -> list[str]:
        return [f"{t.qualified}: {t.error}" for t in self.targets if t.error]

    @property
    def status(self) -> Severity:
        return Severity.CRITICAL if self.errors else Severity.OK

    def summary(self) -> str:
        verb = "would" if self.dry_run else "did"
        what = ", ".join(t.qualified for t in self.targets) or "nothing"
        text = f"{self.action}: {verb} process {len(self.targets)} ({what})"
        if not self.dry_run:
            text += f"; reclaimed {human_bytes(self.reclaimed_bytes)}"
        if self.unplanned:
            text += f"; not in the confirmed plan, left alone: {', '.join(self.unplanned)}"
        if self.left_to_autovacuum:
            text += (f"; left to autovacuum, this role may not maintain them (their owner "
                     f"migrated; PostgreSQL 17+: GRANT pg_maintain TO powr_owner): "
                     f"{', '.join(self.left_to_autovacuum)}")  # fmt: skip
        return text + (f"; {len(self.errors)} error(s)" if self.errors else "")

    def rows(self) -> list[dict[str, Any]]:
        """One row per object, sizes and times in units (``to_dict`` keeps the raw values)."""
        return [
            {
                "object": t.qualified,
                "reason": t.reason,
                "size before": human_bytes(t.before_bytes),
                "size after": None if t.after_bytes is None else human_bytes(t.after_bytes),
                "dead before": t.dead_before,
                "dead after": t.dead_after,
                "time": None if t.seconds is None else human_seconds(t.seconds),
                "error": t.error,
            }
            for t in self.targets
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "dry_run": self.dry_run,
            "tables": [t.qualified for t in self.targets],
            "reclaimed_bytes": self.reclaimed_bytes,
            "errors": self.errors,
            "event_id": self.event_id,
            "targets": [asdict(t) for t in self.targets],
            "unplanned": self.unplanned,
            "journal_skipped": self.journal_skipped,
            "left_to_autovacuum": self.left_to_autovacuum,
        }


# --- planning --------------------------------------------------------------------------------

TABLE_STATS_SQL = sql.SQL("""
SELECT s.schemaname AS schema, s.relname AS name, s.n_live_tup AS live, s.n_dead_tup AS dead,
       s.n_mod_since_analyze AS modified, GREATEST(c.reltuples, 0)::float8 AS reltuples,
       GREATEST(s.last_vacuum, s.last_autovacuum) AS last_vacuum,
       GREATEST(s.last_analyze, s.last_autoanalyze) AS last_analyze,
       pg_total_relation_size(s.relid) AS bytes, now() AS now, {may_maintain} AS maintainable
FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
ORDER BY s.schemaname, s.relname
""")
#: Whether this role may VACUUM and ANALYZE the table: as a member of its owner or of the
#: database's owner (superusers are members of every role), or, from PostgreSQL 17, with the
#: MAINTAIN privilege (pg_maintain).
MAY_MAINTAIN = sql.SQL(
    "(pg_has_role(c.relowner, 'USAGE') OR pg_has_role("
    "(SELECT datdba FROM pg_database WHERE datname = current_database()), 'USAGE'))"
)
MAY_MAINTAIN_17 = sql.SQL("({} OR has_table_privilege(c.oid, 'MAINTAIN'))").format(MAY_MAINTAIN)


def table_stats(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    may = MAY_MAINTAIN_17 if catalog.server_version_num(conn) >= 170000 else MAY_MAINTAIN
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(TABLE_STATS_SQL.format(may_maintain=may))
        return list(cur.fetchall())


def _left_to_autovacuum(stats: list[dict[str, Any]], due: list[Target]) -> list[Target]:
    """The due tables of powrops' history (schema ops, owned by the role that migrated: not
    powr_owner's to alter) this role may not maintain: autovacuum's to look after. A POWR
    table it may not touch stays due, and fails the run, saying whose it is."""
    theirs = {(r["schema"], r["name"]) for r in stats if not r["maintainable"]}
    return [t for t in due if t.schema == OPS_SCHEMA and (t.schema, t.name) in theirs]


def _older(last: datetime | None, now: datetime, days: float) -> bool:
    return last is None or (now - last).total_seconds() > days * 86400


def plan_vacuum(stats: list[dict[str, Any]], settings: Settings) -> list[Target]:
    warning = settings.alerts.dead_tuples.warning
    schedule = settings.maintenance.vacuum
    targets = []
    for row in stats:
        live, dead = int(row["live"] or 0), int(row["dead"] or 0)
        pct = 100.0 * dead / (live + dead) if live + dead else 0.0
        reason = None
        if dead >= MIN_DEAD_TUPLES and pct >= warning:
            reason = f"{pct:.1f} % dead tuples (threshold {warning:g} %)"
        elif dead >= MIN_DEAD_TUPLES and _older(row["last_vacuum"], row["now"], schedule.days):
            reason = f"{dead} dead tuples, last vacuum older than {schedule}"
        if reason:
            targets.append(
                Target(row["schema"], row["name"], reason, int(row["bytes"]), dead_before=dead)
            )
    return targets


def plan_analyze(stats: list[dict[str, Any]], settings: Settings) -> list[Target]:
    schedule = settings.maintenance.analyze
    targets = []
    for row in stats:
        rows = max(float(row["reltuples"]), float(row["live"] or 0))
        modified = int(row["modified"] or 0)
        reason = None
        if row["last_analyze"] is None and (rows > 0 or modified > 0):
            reason = "never analyzed"
        elif modified > 0 and modified >= STALE_FRACTION * rows + 50:
            reason = f"{modified} rows modified since the last analyze ({rows:.0f} rows)"
        elif modified > 0 and _older(row["last_analyze"], row["now"], schedule.days):
            reason = f"modified since an analyze older than {schedule}"
        if reason:
            targets.append(Target(row["schema"], row["name"], reason, int(row["bytes"])))
    return targets


def plan_rebuild(conn: psycopg.Connection[Any], settings: Settings) -> list[Target]:
    """Tables with at least MIN_BLOAT_BYTES and alerts.bloat_min_percent estimated free."""
    targets = []
    for row in catalog.dict_rows(conn, server_checks.table_bloat_query(MIN_BLOAT_BYTES)):
        wasted, pct = int(row["bloat_bytes"]), float(row["bloat_pct"])
        if wasted < MIN_BLOAT_BYTES or pct < settings.alerts.bloat_min_percent:
            continue
        target = Target(
            str(row["schemaname"]),
            str(row["tblname"]),
            f"about {wasted >> 20} MiB free ({pct:.0f} %, estimated); VACUUM FULL holds an "
            "ACCESS EXCLUSIVE lock (no reads, no writes) while it copies the table",
        )
        target.before_bytes, target.dead_before = _size_and_dead(conn, target, False)
        targets.append(target)
    return targets


def plan_reindex(conn: psycopg.Connection[Any]) -> list[Target]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(INDEX_SQL)
        found = list(cur.fetchall())
    has_pgstattuple = _has_extension(conn, "pgstattuple")
    targets = []
    for row in found:
        reason = None
        leftover = LEFTOVER.search(row["name"]) is not None
        if not row["valid"] and leftover:
            reason = "leftover of a failed REINDEX CONCURRENTLY: DROP INDEX CONCURRENTLY"
        elif not row["valid"]:
            reason = "invalid (a failed CREATE INDEX CONCURRENTLY or REINDEX)"
        elif has_pgstattuple and row["method"] == "btree" and row["bytes"] >= MIN_BLOAT_BYTES:
            density = conn.execute(
                "SELECT avg_leaf_density FROM pgstatindex(%s::regclass)", (row["oid"],)
            ).fetchone()
            if density and density[0] is not None and float(density[0]) < MIN_LEAF_DENSITY:
                reason = (
                    f"bloated: leaf density {float(density[0]):.1f} % (< {MIN_LEAF_DENSITY:g} %)"
                )
        if reason:
            targets.append(
                Target(row["schema"], row["name"], reason, int(row["bytes"]), drop=leftover)
            )
    return targets


def _has_extension(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = %s)", (name,))
    found = row.fetchone()
    return bool(found and found[0])


# --- doing -----------------------------------------------------------------------------------


def _size_and_dead(
    conn: psycopg.Connection[Any], target: Target, index: bool
) -> tuple[int, int | None]:
    """Size (index, or table with indexes and TOAST) and dead tuples after the action."""
    if index:
        row = conn.execute(
            "SELECT pg_relation_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
            (target.schema, target.name),
        ).fetchone()
        return (int(row[0]) if row else 0), None
    row = conn.execute(
        "SELECT pg_total_relation_size(relid), n_dead_tup FROM pg_stat_user_tables "
        "WHERE schemaname = %s AND relname = %s",
        (target.schema, target.name),
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, None)


VACUUM = sql.SQL("VACUUM (ANALYZE) {table}")
VACUUM_FULL = sql.SQL("VACUUM (FULL, ANALYZE) {table}")
ANALYZE = sql.SQL("ANALYZE {table}")
REINDEX = sql.SQL("REINDEX INDEX CONCURRENTLY {index}")
DROP_INDEX = sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {index}")
"""Drop an invalid index a failed REINDEX CONCURRENTLY left behind."""

LEFTOVERS_SQL = """
SELECT c.relname FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND NOT i.indisvalid AND c.relname ~ %s
"""
"""Invalid indexes of a schema whose name matches a pattern (an index's ``_ccnew`` leftovers)."""


def _statement(action: str, target: Target) -> sql.Composed:
    ident = sql.Identifier(target.schema, target.name)
    if action == "vacuum":
        return VACUUM.format(table=ident)
    if action == "analyze":
        return ANALYZE.format(table=ident)
    if action == "rebuild":
        return VACUUM_FULL.format(table=ident)
    if target.drop:
        return DROP_INDEX.format(index=ident)
    return REINDEX.format(index=ident)


def _drop_leftovers(conn: psycopg.Connection[Any], target: Target) -> list[str]:
    """Drop the invalid ``<index>_ccnew`` a failed REINDEX CONCURRENTLY of ``target`` left."""
    pattern = "^" + re.escape(target.name) + "_ccnew[0-9]*$"
    rows = conn.execute(LEFTOVERS_SQL, (target.schema, pattern)).fetchall()
    for (name,) in rows:
        conn.execute(DROP_INDEX.format(index=sql.Identifier(target.schema, name)))
    return [str(r[0]) for r in rows]


def _execute(conn: psycopg.Connection[Any], action: str, targets: list[Target]) -> None:
    notices: list[str] = []
    conn.add_notice_handler(lambda diag: notices.append(diag.message_primary or ""))
    for target in targets:
        started = time.monotonic()
        notices.clear()
        try:
            conn.execute(_statement(action, target))
            skipped = [n for n in notices if "skipping" in n]
            if skipped:  # VACUUM and ANALYZE skip a table they may not touch, with a WARNING
                target.error = f"{skipped[0]}: run maintenance as the tables' owner (powr_owner)"
        except psycopg.Error as exc:
            target.error = str(exc).strip().splitlines()[0]
            if action == "reindex" and not target.drop:
                dropped = _drop_leftovers(conn, target)
                target.error += f" (dropped its leftover {', '.join(dropped)})" if dropped else ""
        target.seconds = time.monotonic() - started
        if action in ("vacuum", "rebuild"):
            conn.execute("SELECT pg_stat_clear_snapshot()")
        target.after_bytes, target.dead_after = _size_and_dead(conn, target, action == "reindex")


def _details(run: MaintenanceRun) -> dict[str, Any]:
    return {k: v for k, v in run.to_dict().items() if k not in ("event_id", "journal_skipped")}


def record_event(conn: psycopg.Connection[Any], run: MaintenanceRun, server: str) -> int:
    return journal.record(conn, "maintenance", _details(run), server=server)


def _plan(
    conn: psycopg.Connection[Any], settings: Settings, action: str
) -> tuple[list[Target], list[str]]:
    """What is due for ``action``, and the due history tables left to autovacuum."""
    if action == "reindex":
        return plan_reindex(conn), []
    if action == "rebuild":
        return plan_rebuild(conn, settings), []
    stats = table_stats(conn)
    due = (plan_vacuum if action == "vacuum" else plan_analyze)(stats, settings)
    left = _left_to_autovacuum(stats, due)
    return [t for t in due if t not in left], [t.qualified for t in left]


def _only_planned(due: list[Target], planned: Sequence[Target]) -> tuple[list[Target], list[str]]:
    """What is due now and was planned (acted on), and what is due now but was not planned."""
    names = {t.qualified for t in planned}
    return [t for t in due if t.qualified in names], [
        t.qualified for t in due if t.qualified not in names
    ]


def run(
    settings: Settings,
    action: str,
    *,
    dry_run: bool = False,
    planned: Sequence[Target] | None = None,
) -> MaintenanceRun:
    """Plan ``action`` (vacuum, analyze, reindex, rebuild), do it unless ``dry_run``, record it.

    ``planned`` (the targets of the dry run a person confirmed) limits the action to those of
    them still due: an object due now that the dry run did not list is left alone and named in
    ``MaintenanceRun.unplanned``.
    """

    if action not in ACTIONS:
        raise ParameterError(f"unknown maintenance action {action!r}; expected one of {ACTIONS}")
    with (
        database_errors(f"maintenance {action} failed"),
        connect(settings, autocommit=True) as conn,
    ):
        (targets, left), unplanned = _plan(conn, settings, action), list[str]()
        if planned is not None:
            targets, unplanned = _only_planned(targets, planned)
        result = MaintenanceRun(action, dry_run, targets, unplanned=unplanned,
                                left_to_autovacuum=left)  # fmt: skip
        if dry_run:  # a dry run reads only: a read-only database or a standby skips its row
            result.event_id, result.journal_skipped = journal.record_if_writable(
                conn, "maintenance", _details(result), server=settings.server
            )
        else:
            _execute(conn, action, targets)
            result.event_id = record_event(conn, result, settings.server)
    return result


#: Asks a person (or reads the run's parameter) whether to go on with what it is told.
Confirm = Callable[[str], bool]
#: How often what is due may change under a person before the action gives up asking.
ASK_AGAIN = 3


def _changes(shown: Sequence[Target], now: Sequence[Target]) -> tuple[list[str], list[str]]:
    """What is due now that was not shown, and what was shown that is no longer due."""
    before, after = {t.qualified for t in shown}, {t.qualified for t in now}
    return sorted(after - before), sorted(before - after)


def run_confirmed(
    settings: Settings, action: str, plan: MaintenanceRun, confirm: Confirm, echo: Echo
) -> MaintenanceRun | None:
    """``action`` on what its dry run ``plan`` listed, once ``confirm`` says so; None when it
    does not. If what is due changed since the plan was shown, the difference is said and
    ``confirm`` asked again about the plan as it is now, so a person never confirms one list
    and gets another. A plan that lists nothing is not asked about: nothing runs."""
    if not plan.targets:
        echo(f"{action}: the dry run listed nothing to do; not asked, not run")
        return None
    if not confirm(f"{action} of {len(plan.targets)} object(s) as planned"):
        return None
    for _ in range(ASK_AGAIN):
        fresh = run(settings, action, dry_run=True)
        added, gone = _changes(plan.targets, fresh.targets)
        if not added and not gone:
            return run(settings, action, planned=plan.targets)
        echo(f"Changed since the plan was shown: now due {', '.join(added) or 'nothing new'}; "
             f"no longer due {', '.join(gone) or 'nothing'}")  # fmt: skip
        plan = fresh
        if not confirm(f"{action} of {len(plan.targets)} object(s) as planned now"):
            return None
    return run(settings, action, planned=plan.targets)
