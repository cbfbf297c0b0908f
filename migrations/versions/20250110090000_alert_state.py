"""alert state

``ops.alert_state``: what each ``powrops alerts`` run leaves for the next one, one row per
name: the statistics it compares against (``pg_stat_statements`` calls and time per
statement, checkpoint and archiver counters) and the notification state (the severity last
sent per finding, when). ``powr_reporting``, the role alerts run as, reads and writes it;
``powr_owner`` gets it through the default privileges of the job roles revision.

Revision ID: 20250110090000
Revises: 20241204090000
Create Date: 2025-01-10 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "20250110090000"
down_revision = "20241204090000"
branch_labels = None
depends_on = None

transaction = True

# powrops' own bookkeeping, like the job roles revision: the DDL audit trail pauses while it is
# created (a superuser migrating; any other role leaves the triggers as they are), so that the
# trail shows changes to POWR's schema, not to powrops' state.
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

GRANT = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'powr_reporting') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON ops.alert_state TO powr_reporting;
    END IF;
END
$$"""


def upgrade() -> None:
    op.execute(PAUSE_AUDIT)
    op.create_table(
        "alert_state",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column("state", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        schema="ops",
    )
    op.execute(GRANT)
    op.execute(RESUME_AUDIT)


def downgrade() -> None:
    op.execute(PAUSE_AUDIT)
    op.drop_table("alert_state", schema="ops")
    op.execute(RESUME_AUDIT)
