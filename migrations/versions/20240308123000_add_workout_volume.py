"""add workout volume

The strategy's example migration: ``workouts.total_volume`` (sum of weight * reps of the
workout's sets, kept by the application and checked by the integrity checks) and the
``idx_workouts_user_date`` index behind "a user's workouts, newest first".

Revision ID: 20240308123000
Revises: 20240101000000
Create Date: 2024-03-08 12:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20240308123000"
down_revision = "20240101000000"
branch_labels = None
depends_on = None

transaction = True


def upgrade() -> None:
    op.add_column("workouts", sa.Column("total_volume", sa.Numeric(10, 2), nullable=True))
    op.create_index("idx_workouts_user_date", "workouts", ["user_id", sa.text("date DESC")])


def downgrade() -> None:
    op.drop_index("idx_workouts_user_date", table_name="workouts")
    op.drop_column("workouts", "total_volume")
