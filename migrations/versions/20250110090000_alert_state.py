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

GRANT = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'powr_reporting') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON ops.alert_state TO powr_reporting;
    END IF;
END
$$"""


def upgrade() -> None:
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


def downgrade() -> None:
    op.drop_table("alert_state", schema="ops")
