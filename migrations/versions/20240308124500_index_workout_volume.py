"""index workout volume

The strategy's partial index on the calculated field, built with CREATE INDEX CONCURRENTLY so
that writes to ``workouts`` go on while it builds. PostgreSQL refuses CONCURRENTLY inside a
transaction block, hence ``transaction = False`` and alembic's autocommit block.

Revision ID: 20240308124500
Revises: 20240308123000
Create Date: 2024-03-08 12:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "20240308124500"
down_revision = "20240308123000"
branch_labels = None
depends_on = None

transaction = False

INDEX = "idx_workouts_volume"


def _drop_invalid_leftover() -> None:
    """Drop an INVALID index left by an interrupted concurrent build (IF NOT EXISTS keeps it)."""
    if context.is_offline_mode():
        return
    invalid = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = :name AND c.relnamespace = 'public'::regnamespace "
                "AND NOT i.indisvalid"
            ),
            {"name": INDEX},
        )
        .first()
    )
    if invalid is not None:
        op.drop_index(INDEX, table_name="workouts", postgresql_concurrently=True)


def upgrade() -> None:
    with op.get_context().autocommit_block():
        _drop_invalid_leftover()
        op.create_index(
            INDEX,
            "workouts",
            ["total_volume"],
            postgresql_where=sa.text("total_volume IS NOT NULL"),
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(INDEX, table_name="workouts", postgresql_concurrently=True, if_exists=True)
