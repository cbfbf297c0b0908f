"""Schema migrations: alembic plans (``plan``), production migrations (``production``) and their
safeguards (``safeguards``)."""

from __future__ import annotations

from powrops.migrate.plan import (
    CONNECT_TIMEOUT_S,
    REVISION_ID,
    AlembicErrors,
    Revision,
    RevisionStatus,
    alembic_config,
    current,
    downgrade,
    downgrade_with_session,
    heads,
    offline_sql,
    revision_sql,
    revision_timestamp,
    revision_transaction,
    revisions,
    rollback,
    schema_diff,
    sqlalchemy_url,
    status,
    upgrade,
    upgrade_with_session,
)

__all__ = [
    "CONNECT_TIMEOUT_S",
    "REVISION_ID",
    "AlembicErrors",
    "Revision",
    "RevisionStatus",
    "alembic_config",
    "current",
    "downgrade",
    "downgrade_with_session",
    "heads",
    "offline_sql",
    "revision_sql",
    "revision_timestamp",
    "revision_transaction",
    "revisions",
    "rollback",
    "schema_diff",
    "sqlalchemy_url",
    "status",
    "upgrade",
    "upgrade_with_session",
]
