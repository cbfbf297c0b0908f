"""history by server

Several servers of one configuration may keep their history in one database's ``ops`` (a
staging server and its regional copy that share a tooling database, say). Each history row
records the server it came from: a ``server`` column (``text NOT NULL DEFAULT 'default'``, the
name of the server of a configuration without ``[servers.*]``, so that rows written before
this revision stay with it) on ``ops.check_runs``, ``ops.events`` and
``ops.metric_snapshots``, and in the key of ``ops.alert_state`` (one state per server and
name). The readers filter by it, through indexes that lead with it. Grants are per table, so the
column needs none.

Revision ID: 20251201090000
Revises: 20250110090000
Create Date: 2025-12-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20251201090000"
down_revision = "20250110090000"
branch_labels = None
depends_on = None

transaction = True

OPS = "ops"
DEFAULT_SERVER = "default"
HISTORY_TABLES = ("check_runs", "events", "metric_snapshots", "alert_state")

# Each reader filters by server first. The indexes without it stay: cleanup deletes by age
# across every server.
INDEXES = [
    ("idx_check_runs_server_kind_started_at", "check_runs", ["server", "kind", "started_at"]),
    ("idx_events_server_kind_at", "events", ["server", "kind", "at"]),
    ("idx_metric_snapshots_server_taken_at", "metric_snapshots", ["server", "taken_at"]),
]


# powrops' own bookkeeping: the DDL audit trail pauses while it changes (a superuser migrating),
# as in the job roles and alert state revisions. Migrations keep their SQL to themselves, so
# that a later change to the library cannot change what an old revision did.
_AUDIT_TRIGGERS = """
DO $$
DECLARE r record;
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RETURN;
    END IF;
    FOR r IN SELECT evtname FROM pg_event_trigger
             WHERE evtname IN ('powrops_audit_ddl', 'powrops_audit_drop') LOOP
        EXECUTE 'ALTER EVENT TRIGGER ' || quote_ident(r.evtname) || ' {state}';
    END LOOP;
END
$$"""
PAUSE_AUDIT = _AUDIT_TRIGGERS.replace("{state}", "DISABLE")
RESUME_AUDIT = _AUDIT_TRIGGERS.replace("{state}", "ENABLE")


def _server() -> sa.Column[str]:
    return sa.Column("server", sa.Text, nullable=False, server_default=DEFAULT_SERVER)


def upgrade() -> None:
    op.execute(PAUSE_AUDIT)
    for table in HISTORY_TABLES:
        op.add_column(table, _server(), schema=OPS)
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, schema=OPS)
    op.drop_constraint("alert_state_pkey", "alert_state", schema=OPS, type_="primary")
    op.create_primary_key("alert_state_pkey", "alert_state", ["server", "name"], schema=OPS)
    op.execute(RESUME_AUDIT)


def downgrade() -> None:
    op.execute(PAUSE_AUDIT)
    # Named servers' alert state cannot share the one-name key: the default server keeps its.
    op.execute(
        sa.text("DELETE FROM ops.alert_state WHERE server <> :server").bindparams(
            server=DEFAULT_SERVER
        )
    )
    op.drop_constraint("alert_state_pkey", "alert_state", schema=OPS, type_="primary")
    op.create_primary_key("alert_state_pkey", "alert_state", ["name"], schema=OPS)
    for name, table, _columns in INDEXES:
        op.drop_index(name, table_name=table, schema=OPS)
    for table in HISTORY_TABLES:
        op.drop_column(table, "server", schema=OPS)
    op.execute(RESUME_AUDIT)
