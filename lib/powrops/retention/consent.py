"""Consent records (``consents``): recording grants and revocations, and totals per purpose.

A consent row is one grant for one purpose (``granted`` true, ``granted_at``); revoking sets
``granted`` false and ``revoked_at``, so the history of a grant stays visible. The report counts
per purpose: grants in force, revoked grants, and the users with a grant in force.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from powrops.errors import ParameterError

REPORT_SQL = """
SELECT purpose,
       count(*) FILTER (WHERE granted AND revoked_at IS NULL) AS granted,
       count(*) FILTER (WHERE NOT granted OR revoked_at IS NOT NULL) AS revoked,
       count(DISTINCT user_id) FILTER (WHERE granted AND revoked_at IS NULL) AS users
FROM consents
GROUP BY purpose
ORDER BY purpose
"""


@dataclass(frozen=True)
class PurposeTotals:
    purpose: str
    granted: int
    revoked: int
    users: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def report(conn: psycopg.Connection[Any]) -> list[PurposeTotals]:
    """Granted and revoked totals per purpose (set-based)."""
    return [
        PurposeTotals(str(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in conn.execute(REPORT_SQL)
    ]


def grant(
    conn: psycopg.Connection[Any], user_id: int, purpose: str, source: str | None = None
) -> int:
    """Record a grant (a new row unless one is in force); its consent id."""
    if not purpose.strip():
        raise ParameterError("a consent needs a purpose")
    row = conn.execute(
        "SELECT id FROM consents WHERE user_id = %s AND purpose = %s AND granted "
        "AND revoked_at IS NULL",
        (user_id, purpose),
    ).fetchone()
    if row:
        return int(row[0])
    new = conn.execute(
        "INSERT INTO consents (user_id, purpose, granted, granted_at, source) "
        "VALUES (%s, %s, true, now(), %s) RETURNING id",
        (user_id, purpose, source),
    ).fetchone()
    assert new is not None
    return int(new[0])


def revoke(conn: psycopg.Connection[Any], user_id: int, purpose: str) -> int:
    """Revoke the user's grants in force for ``purpose``; how many were revoked."""
    return conn.execute(
        "UPDATE consents SET granted = false, revoked_at = now() "
        "WHERE user_id = %s AND purpose = %s AND granted AND revoked_at IS NULL",
        (user_id, purpose),
    ).rowcount
