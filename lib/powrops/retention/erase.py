"""GDPR erasure and the anonymization of long-inactive accounts.

``erase_user`` removes a user everywhere (:mod:`.subject` lists where): first the archive files
of every index entry of the user (restored ones too), then, in one transaction, the live rows
(sets, workouts, the user's own exercises, totals, sessions, consents, temp data, cache
entries), the redaction of audit_log rows and system log messages that carry the user's data,
the index entries and the users row. What stays is one ``GDPR_ERASE`` audit record and one
``ops.events`` row holding a request id and counts - no personal data. Files go first so that
an interrupted erasure never leaves personal data in an unindexed file; running it again
finishes the job (every step is idempotent).

A custom exercise of the user that other users' sets refer to is moved to the global catalogue
(``user_id`` NULL) instead of being deleted, so nobody else's history breaks.

``anonymize_user`` (the ``user_account.inactive`` policy) keeps the account and its history
(workouts are archived by then) but removes what identifies a person: e-mail and display name
are replaced, sessions, temp data and cache entries deleted, and audit_log rows of the users
row and system log messages naming the user redacted.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import psycopg

from powrops.config import Settings
from powrops.errors import Interrupted
from powrops.retention import journal
from powrops.retention.archival import index_entries
from powrops.retention.errors import ArchiveValidationError
from powrops.retention.gdpr import archived_workout_ids
from powrops.retention.repository import open_archive
from powrops.retention.subject import (
    HOLDINGS,
    REDACTED_MESSAGE,
    deletion,
    params,
    present,
    redaction,
)

ANONYMIZED_DOMAIN = "anonymized.invalid"


@dataclass
class EraseResult:
    request_id: str
    dry_run: bool
    rows: dict[str, int] = field(default_factory=dict)
    archive_files: int = 0
    errors: list[str] = field(default_factory=list)

    def holds_nothing(self) -> bool:
        """No row and no archive file of the user: already erased, or not a user's id."""
        return not any(self.rows.values()) and not self.archive_files

    def to_dict(self) -> dict[str, Any]:
        """Counts and the request id only: what the audit record and reports show."""
        return {
            "request_id": self.request_id,
            "dry_run": self.dry_run,
            "rows": dict(self.rows),
            "archive_files": self.archive_files,
            "errors": list(self.errors),
        }


def nothing_held(user_id: int) -> str:
    """What a request about a user of whom nothing is held says (a typo'd id reads like an
    erasure else)."""
    return (
        f"user {user_id}: nothing held, no rows and no archive files (already erased, or not "
        "a user's id)"
    )


def erase_user(settings: Settings, user_id: int, *, dry_run: bool = False) -> EraseResult:
    """Erase ``user_id`` everywhere (or, with ``dry_run``, count what would be erased)."""
    result = EraseResult(uuid.uuid4().hex, dry_run)
    with journal.connect(settings) as conn:
        entries, archived = _archived(conn, settings, user_id, result)
        live = [
            r[0] for r in conn.execute("SELECT id FROM workouts WHERE user_id = %s", (user_id,))
        ]
        args = {**params(user_id, live + archived), "request": result.request_id,
                "message": REDACTED_MESSAGE}  # fmt: skip
        conn.commit()
        result.archive_files = len(entries)
        archived_rows = sum(int(e["rows"]) for e in entries)
        if dry_run:
            for holding in present(conn):
                row = conn.execute(holding.count(), args).fetchone()
                result.rows[holding.name] = int(row[0]) if row else 0
            result.rows["archived_rows"] = archived_rows
            conn.commit()
            return result
        try:
            for entry in entries:  # files first: never personal data in an unindexed file
                repo = open_archive(settings, entry["details"]["repository"])
                repo.delete(entry["details"]["key"])
            with journal.bulk_transaction(conn, lock_timeout="10s", statement_timeout="30min"):
                for holding in present(conn):
                    result.rows[holding.name] = _erase(conn, holding, args)
                gone = conn.execute("DELETE FROM ops.archive_index WHERE user_id = %s", (user_id,))
                result.rows["archive_index"] = gone.rowcount
                result.rows["archived_rows"] = archived_rows
                journal.audit_summary(conn, "GDPR_ERASE", result.to_dict())
        except KeyboardInterrupt as exc:
            raise Interrupted.of(exc).leaving(
                f"the erasure of user {user_id} is not finished (its archive files may be "
                f"deleted, its rows are not): `powrops gdpr erase {user_id} --yes` finishes it"
            ) from None
    journal.record_run(settings, "gdpr", {"operation": "erase", **result.to_dict()})
    return result


def _archived(
    conn: psycopg.Connection[Any], settings: Settings, user_id: int, result: EraseResult
) -> tuple[list[dict[str, Any]], list[int]]:
    try:
        return archived_workout_ids(conn, settings, user_id, restored=True)
    except ArchiveValidationError as exc:  # unreadable: still erased, its ids unknown
        result.errors.append(str(exc))
        return list(index_entries(conn, user_id)), []


def _erase(conn: psycopg.Connection[Any], holding: Any, args: dict[str, Any]) -> int:
    if holding.erase == "redact":
        return conn.execute(redaction(holding), args).rowcount
    if holding.erase == "exercises":
        kept = conn.execute(
            "UPDATE exercises e SET user_id = NULL WHERE e.user_id = %(uid)s AND EXISTS ("
            "SELECT 1 FROM workout_sets s JOIN workouts w ON w.id = s.workout_id "
            "WHERE s.exercise_id = e.id AND w.user_id <> %(uid)s)",
            args,
        ).rowcount
        return kept + conn.execute(deletion(holding), args).rowcount
    return conn.execute(deletion(holding), args).rowcount


def anonymize_user(conn: psycopg.Connection[Any], user_id: int) -> dict[str, int]:
    """Strip what identifies a person from an inactive account (in the caller's transaction)."""
    args = {**params(user_id, []), "message": REDACTED_MESSAGE, "request": "anonymize"}
    counts = {
        "users": conn.execute(
            "UPDATE users SET email = 'user-' || id || %s, display_name = NULL WHERE id = %s",
            ("@" + ANONYMIZED_DOMAIN, user_id),
        ).rowcount
    }
    for holding in HOLDINGS:
        if holding.table in ("sessions", "temp_data", "cache_entries"):
            counts[holding.table] = conn.execute(deletion(holding), args).rowcount
        elif holding.table == "system_logs":
            counts[holding.table] = conn.execute(redaction(holding), args).rowcount
    counts["audit_log"] = conn.execute(
        "UPDATE audit_log SET old_value = NULL, new_value = NULL, "
        "details = jsonb_build_object('redacted', 'anonymized') "
        "WHERE table_name = 'users' AND row_id = %s::text",
        (user_id,),
    ).rowcount
    return counts
