"""Loading a dataset with COPY in one transaction, and the seed runs recorded in ``ops``."""

from __future__ import annotations

import time as clock
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from psycopg import sql

from powrops.demo.data.connect import Target, connect
from powrops.demo.data.dataset import Dataset
from powrops.demo.data.defects import DEFECT_TABLES
from powrops.demo.data.rows import POWR_TABLES, TableLoad
from powrops.errors import SeedError

if TYPE_CHECKING:
    import psycopg


@dataclass(frozen=True)
class SeedReport:
    """What ``load()`` did: rows per table, planted defects per kind, time taken."""

    rows: dict[str, int]
    defects: dict[str, int]
    seconds: float
    already_seeded: bool
    seed_run_id: int | None
    params: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": dict(self.rows),
            "defects": dict(self.defects),
            "seconds": round(self.seconds, 3),
            "already_seeded": self.already_seeded,
            "seed_run_id": self.seed_run_id,
            "params": dict(self.params),
        }

    def describe(self) -> str:
        """A summary line, then rows per table and planted defects per kind."""
        p = self.params
        what = (
            f"{self.rows.get('users', 0):,} users, {self.rows.get('workouts', 0):,} workouts, "
            f"{self.rows.get('workout_sets', 0):,} sets"
        )
        planted = sum(self.defects.values())
        how = f"seed {p.get('seed')}, {p.get('weeks')} weeks, {planted} planted defects"
        if self.already_seeded:
            head = f"already seeded (seed run {self.seed_run_id}: {what}; {how}): nothing loaded"
        else:
            head = f"seeded {what} in {self.seconds:.1f} s ({how}; seed run {self.seed_run_id})"
        lines = [head]
        lines += [f"  {table:14} {count:>10,}" for table, count in self.rows.items()]
        lines += [f"  defect {kind:22} {n:>4}" for kind, n in self.defects.items() if n]
        return "\n".join(lines)


def _missing_tables(conn: psycopg.Connection[Any]) -> list[str]:
    names = [f"public.{t}" for t in POWR_TABLES] + ["ops.seed_runs", "ops.planted_defects"]
    found = conn.execute(
        "SELECT name FROM unnest(%s::text[]) AS name WHERE to_regclass(name) IS NULL", (names,)
    ).fetchall()
    return [row[0] for row in found]


def _require_schema(conn: psycopg.Connection[Any]) -> None:
    missing = _missing_tables(conn)
    if missing:
        raise SeedError(
            f"the POWR schema is missing ({', '.join(missing)}): "
            "run `powrops migrate latest` first",
            missing=missing,
        )


HAS_DATA = sql.SQL("SELECT {any_table_has_rows}")
HAS_ROWS = sql.SQL("EXISTS (SELECT 1 FROM {table})")


def _has_data(conn: psycopg.Connection[Any]) -> bool:
    tables = (HAS_ROWS.format(table=sql.Identifier("public", t)) for t in POWR_TABLES)
    row = conn.execute(HAS_DATA.format(any_table_has_rows=sql.SQL(" OR ").join(tables))).fetchone()
    return bool(row and row[0])


class _SeedRun(NamedTuple):
    id: int
    identity: dict[str, Any]
    params: dict[str, Any]
    rows: dict[str, int]


def _last_seed_run(conn: psycopg.Connection[Any]) -> _SeedRun | None:
    row = conn.execute(
        "SELECT id, seed, users, weeks, defects, params, rows FROM ops.seed_runs "
        "ORDER BY id DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    run_id, seed, users, weeks, defects, params, rows = row
    identity = {
        "users": users,
        "weeks": weeks,
        "seed": seed,
        "defects": defects,
        "generator": params.get("generator"),
    }
    ordered = {t: rows[t] for t in POWR_TABLES if t in rows}
    return _SeedRun(run_id, identity, dict(params), ordered)


def _planted_counts(conn: psycopg.Connection[Any], run_id: int) -> dict[str, int]:
    rows = conn.execute(
        "SELECT kind, count FROM ops.planted_defects WHERE seed_run_id = %s ORDER BY id", (run_id,)
    ).fetchall()
    return {kind: count for kind, count in rows}


COPY_IN = sql.SQL("COPY {table} ({columns}) FROM STDIN")


def _copy(conn: psycopg.Connection[Any], load: TableLoad) -> int:
    statement = COPY_IN.format(
        table=sql.Identifier("public", load.table),
        columns=sql.SQL(", ").join(map(sql.Identifier, load.columns)),
    )
    n = 0
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for row in load.rows:
            copy.write_row(row)
            n += 1
    return n


def _triggers_off(conn: psycopg.Connection[Any]) -> bool:
    """Stop foreign-key (and other) triggers for this transaction, if the role may."""
    import psycopg

    try:
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")
    except psycopg.errors.InsufficientPrivilege:
        return False
    return True


FOREIGN_KEYS = """
SELECT c.conrelid::regclass::text, a.attname, c.confrelid::regclass::text, r.attname
FROM pg_constraint c
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
JOIN pg_attribute r ON r.attrelid = c.confrelid AND r.attnum = c.confkey[1]
WHERE c.contype = 'f' AND cardinality(c.conkey) = 1
  AND c.conrelid = ANY(%s::regclass[])
ORDER BY 1, 2
"""


ORPHANS_COUNT = sql.SQL("""
SELECT count(*) FROM {table} AS c
WHERE c.{column} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {parent} AS p WHERE p.{key} = c.{column})
""")
"""Rows of a table whose foreign key (one column) references no parent row."""


def _verify_references(conn: psycopg.Connection[Any], dataset: Dataset) -> None:
    """Check every foreign key set-based: only the planted orphans may reference nothing."""
    expected = dataset.expected_orphans()
    tables = [f"public.{t}" for t in POWR_TABLES]
    for table, column, parent, key in conn.execute(FOREIGN_KEYS, (tables,)).fetchall():
        query = ORPHANS_COUNT.format(
            table=sql.Identifier(*table.split(".", 1)),
            parent=sql.Identifier(*parent.split(".", 1)),
            column=sql.Identifier(column),
            key=sql.Identifier(key),
        )
        row = conn.execute(query).fetchone()
        found = int(row[0]) if row else 0
        want = expected.get((table.split(".")[-1], column), 0)
        if found != want:
            raise SeedError(
                f"demo data broke a foreign key: {found} rows of {table}.{column} reference no "
                f"{parent}.{key} ({want} planted); this is a bug in powrops.demo.data"
            )


SERIAL_SEQUENCES = """
SELECT table_name, pg_get_serial_sequence(format('public.%%I', table_name), 'id')
FROM information_schema.columns
WHERE table_schema = 'public' AND column_name = 'id' AND table_name = ANY(%s)
"""
"""The id sequence (identity or serial) of each of the given public tables."""

SET_SEQUENCE = sql.SQL("SELECT setval(%s, COALESCE((SELECT max(id) FROM {table}), 0) + 1, false)")
"""Move a sequence past the table's largest id."""


def _fix_sequences(conn: psycopg.Connection[Any]) -> None:
    """Move every id sequence (identity or serial) past the explicit ids that COPY wrote."""
    found = conn.execute(SERIAL_SEQUENCES, (list(POWR_TABLES),)).fetchall()
    for table, sequence in found:
        if sequence is not None:
            conn.execute(SET_SEQUENCE.format(table=sql.Identifier("public", table)), (sequence,))


def _record(conn: psycopg.Connection[Any], dataset: Dataset, rows: Mapping[str, int]) -> int:
    from psycopg.types.json import Jsonb

    p = dataset.params
    row = conn.execute(
        "INSERT INTO ops.seed_runs (seed, users, weeks, defects, params, rows) "
        "VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (p.seed, p.users, p.weeks, p.defects, Jsonb(p.to_dict()), Jsonb(dict(rows))),
    ).fetchone()
    assert row is not None
    run_id = int(row[0])
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO ops.planted_defects (seed_run_id, kind, table_name, count, sample_ids) "
            "VALUES (%s, %s, %s, %s, %s)",
            [
                (run_id, kind, DEFECT_TABLES[kind], len(ids), Jsonb(ids[:20]))
                for kind, ids in dataset.defects.items()
            ],
        )
    return run_id


ANALYZE = sql.SQL("ANALYZE {table}")
TRUNCATE = sql.SQL("TRUNCATE {tables} RESTART IDENTITY CASCADE")


def _write(conn: psycopg.Connection[Any], dataset: Dataset) -> dict[str, int]:
    """COPY every table with triggers off and check references after, set-based (fast);
    or, for a role that may not turn triggers off, COPY with foreign keys checked per row."""
    fast = _triggers_off(conn)
    if not fast and any(dataset.expected_orphans().values()):
        raise SeedError(
            "planting orphan rows needs SET session_replication_role (a superuser, or GRANT "
            "SET ON PARAMETER session_replication_role TO the role); seed without defects"
        )
    rows = dict.fromkeys(POWR_TABLES, 0)
    for load in dataset.tables():
        rows[load.table] += _copy(conn, load)
    if fast:
        conn.execute("SET LOCAL session_replication_role = origin")
        _verify_references(conn, dataset)
    _fix_sequences(conn)
    for table in POWR_TABLES:
        conn.execute(ANALYZE.format(table=sql.Identifier("public", table)))
    return rows


LOCK_KEY = 0x504F5752  # "POWR": one seeding at a time per database


def load(target: Target, dataset: Dataset, *, replace: bool = False) -> SeedReport:
    """Load a dataset with COPY in one transaction and record it in ``ops.seed_runs``.

    Loading the same parameters (``SeedParams.identity()``) into a database last seeded with
    them is a no-op that reports ``already_seeded``, so ``make demo`` can be rerun; any other
    existing POWR data raises SeedError unless ``replace`` is given, which truncates the
    POWR tables (RESTART IDENTITY CASCADE) in the same transaction. A missing schema raises
    SeedError asking for ``powrops migrate latest``.

    Rows are copied with ``session_replication_role = replica`` (no per-row foreign-key
    triggers, and none of any other trigger either), then every foreign key is checked
    set-based, allowing exactly the planted orphans. A role that may not set it loads with
    foreign keys checked row by row, and cannot plant orphans. Identity sequences are moved
    past the explicit ids and the tables analyzed. Given a connection already inside a
    transaction, the load runs in a savepoint and the caller commits.
    """
    import psycopg

    started = clock.perf_counter()
    with connect(target) as conn:
        try:
            with conn.transaction():
                _require_schema(conn)
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
                if _has_data(conn):
                    done = _existing(conn, dataset, replace, started)
                    if done is not None:
                        return done
                    tables = sql.SQL(", ").join(sql.Identifier("public", t) for t in POWR_TABLES)
                    conn.execute(TRUNCATE.format(tables=tables))
                rows = _write(conn, dataset)
                run_id = _record(conn, dataset, rows)
        except psycopg.Error as exc:
            raise SeedError(f"loading demo data failed: {str(exc).strip()}") from exc
    return SeedReport(
        rows=rows,
        defects=dataset.defect_counts(),
        seconds=clock.perf_counter() - started,
        already_seeded=False,
        seed_run_id=run_id,
        params=dataset.params.to_dict(),
    )


def _existing(
    conn: psycopg.Connection[Any], dataset: Dataset, replace: bool, started: float
) -> SeedReport | None:
    """The report for a database already seeded alike, None to replace, or SeedError."""
    last = _last_seed_run(conn)
    if replace:
        return None
    if last is not None and last.identity == dataset.params.identity():
        return SeedReport(
            rows=last.rows,
            defects=_planted_counts(conn, last.id),
            seconds=clock.perf_counter() - started,
            already_seeded=True,
            seed_run_id=last.id,
            params=last.params,
        )
    before = ""
    if last is not None:
        i = last.identity
        with_defects = ", with defects" if i["defects"] else ""
        before = (
            f" (seed run {last.id}: seed {i['seed']}, {i['users']} users, {i['weeks']} weeks"
            f"{with_defects})"
        )
    raise SeedError(
        f"the database already holds POWR data{before}; pass replace=True "
        "(`powrops seed --replace`) to truncate it and load the demo data",
        last_seed_run=last.id if last else None,
    )


def planted_defects(target: Target) -> dict[str, int]:
    """Defects per kind that the latest seed run planted ({} when nothing was ever seeded)."""
    import psycopg

    with connect(target) as conn:
        try:
            with conn.transaction():
                row = conn.execute("SELECT max(id) FROM ops.seed_runs").fetchone()
                return _planted_counts(conn, row[0]) if row and row[0] is not None else {}
        except psycopg.errors.UndefinedTable as exc:
            raise SeedError(
                "the ops schema is missing: run `powrops migrate latest` first"
            ) from exc
