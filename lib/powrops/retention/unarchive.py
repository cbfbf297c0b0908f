"""Bringing a user's archived workouts and sets back into the live tables.

Each not-yet-restored ``ops.archive_index`` entry of the user is read from its repository in
one pass; its rows are inserted with their original ids (in chunks, through
``jsonb_populate_recordset``), and before the transaction commits the rows read are checked
against the index (the stored bytes' SHA-256, row counts and checksums per table). The entry is
then marked ``restored_at`` (the file stays in the repository), ``user_totals`` gets the rows
back, and one ``ARCHIVE_RESTORE`` audit record is written. A mismatch or an id that is live
again rolls the entry's transaction back: nothing half-restored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

from powrops.config import Settings
from powrops.retention import archival_file, journal, liverows
from powrops.retention.archival import index_entries
from powrops.retention.errors import ArchiveValidationError, RestoreConflict, RetentionError
from powrops.retention.repository import open_archive

CHUNK = 1000


@dataclass
class RestoreResult:
    user_id: int
    entries: list[int] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(archival_file.TABLES, 0))

    def to_dict(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "index_ids": self.entries, "rows": dict(self.rows)}


def restore_user(settings: Settings, user_id: int) -> RestoreResult:
    """Restore every archived (not yet restored) file of ``user_id``; RetentionError if none."""
    result = RestoreResult(user_id)
    with journal.connect(settings) as conn:
        entries = list(index_entries(conn, user_id, include_restored=False))
        conn.commit()
        if not entries:
            raise RetentionError(f"user {user_id} has no archived data to restore")
        for entry in entries:
            counts = _restore_entry(conn, settings, entry)
            result.entries.append(int(entry["id"]))
            for table, n in counts.items():
                result.rows[table] += n
    journal.record_run(
        settings, "archive", {"operation": "restore", **result.to_dict(), "dry_run": False}
    )
    return result


INSERT_ROWS = sql.SQL(
    "INSERT INTO {table} SELECT * FROM jsonb_populate_recordset(NULL::{table}, %s::jsonb)"
)
"""Insert archived rows (a JSON array of the rows' texts) with their original ids."""


def _insert(conn: psycopg.Connection[Any], table: str, chunk: list[str]) -> None:
    query = INSERT_ROWS.format(table=sql.Identifier(table))
    try:
        with conn.transaction():  # a savepoint: report a conflict clearly
            conn.execute(query, ("[" + ",".join(chunk) + "]",))
    except psycopg.errors.UniqueViolation as exc:
        raise RestoreConflict(
            f"cannot restore {table}: a row with an archived id is live again "
            f"({exc.diag.message_detail})"
        ) from exc


def _restore_entry(
    conn: psycopg.Connection[Any], settings: Settings, entry: dict[str, Any]
) -> dict[str, int]:
    details = entry["details"]
    repo = open_archive(settings, details["repository"])
    key = details["key"]
    file_hash = hashlib.sha256()
    hashes = {t: hashlib.sha256() for t in archival_file.TABLES}
    counts = dict.fromkeys(archival_file.TABLES, 0)
    with journal.bulk_transaction(conn, lock_timeout="10s", statement_timeout="30min"):
        chunk: list[str] = []
        current = ""
        for table, text in archival_file.read_rows(repo, key, on_bytes=file_hash.update):
            if not table:
                continue
            if chunk and (table != current or len(chunk) >= CHUNK):
                _insert(conn, current, chunk)
                chunk = []
            current = table
            chunk.append(text)
            hashes[table].update(text.encode() + b"\n")
            counts[table] += 1
        if chunk:
            _insert(conn, current, chunk)
        _check(repo.describe(key), entry, file_hash.hexdigest(), counts, hashes)
        liverows.adjust_totals(
            conn, int(entry["user_id"]), counts["workouts"], Decimal(details.get("volume", "0"))
        )
        conn.execute(
            "UPDATE ops.archive_index SET details = details || "
            "jsonb_build_object('restored_at', now()) WHERE id = %s",
            (entry["id"],),
        )
        journal.audit_summary(
            conn, "ARCHIVE_RESTORE",
            {"operation": "restore", "index_id": entry["id"], **counts}, table_name="workouts",
        )  # fmt: skip
    return counts


def _check(
    where: str,
    entry: dict[str, Any],
    file_sha: str,
    counts: dict[str, int],
    hashes: dict[str, Any],
) -> None:
    details = entry["details"]
    problems = []
    if file_sha != entry["sha256"]:
        problems.append("the file's SHA-256 differs from the index")
    for table in archival_file.TABLES:
        if counts[table] != details["rows"][table]:
            indexed = details["rows"][table]
            problems.append(f"{table}: {counts[table]} rows, the index says {indexed}")
        elif hashes[table].hexdigest() != details["sha256"][table]:
            problems.append(f"{table}: rows checksum differs from the index")
    if problems:
        raise ArchiveValidationError(f"{where}: " + "; ".join(problems), problems=problems)
