"""ops tables

Tooling state in schema ``ops``: demo-data seed runs and the defects they planted, integrity
check runs and their repairs, data metric snapshots (growth reports), the archive index
(retention) and ``ops.events``, a generic journal of what powrops did.

Revision ID: 20240315090000
Revises: 20240308124500
Create Date: 2024-03-15 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "20240315090000"
down_revision = "20240308124500"
branch_labels = None
depends_on = None

transaction = True

OPS = "ops"
NOW = sa.text("now()")
EMPTY_OBJECT = sa.text("'{}'::jsonb")
EMPTY_ARRAY = sa.text("'[]'::jsonb")


def _id() -> sa.Column[int]:
    return sa.Column("id", sa.BigInteger, sa.Identity(always=False), primary_key=True)


def _at(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False, server_default=NOW)


def _json(name: str, default: sa.TextClause = EMPTY_OBJECT) -> sa.Column[object]:
    return sa.Column(name, postgresql.JSONB, nullable=False, server_default=default)


def _create_seed_tables() -> None:
    op.create_table(
        "seed_runs",
        _id(),
        _at("seeded_at"),
        sa.Column("seed", sa.Integer, nullable=False),
        sa.Column("users", sa.Integer, nullable=False),
        sa.Column("weeks", sa.Integer, nullable=False),
        sa.Column("defects", sa.Boolean, nullable=False, server_default=sa.false()),
        _json("params"),
        _json("rows"),
        schema=OPS,
    )
    op.create_table(
        "planted_defects",
        _id(),
        sa.Column(
            "seed_run_id",
            sa.BigInteger,
            sa.ForeignKey("ops.seed_runs.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("table_name", sa.Text, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        _json("sample_ids", EMPTY_ARRAY),
        schema=OPS,
    )


def _create_check_tables() -> None:
    op.create_table(
        "check_runs",
        _id(),
        _at("started_at"),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        _json("counts"),
        _json("findings", EMPTY_ARRAY),
        schema=OPS,
    )
    op.create_table(
        "repairs",
        _id(),
        sa.Column(
            "run_id",
            sa.BigInteger,
            sa.ForeignKey("ops.check_runs.id", ondelete="SET NULL"),
        ),
        _at("at"),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("table_name", sa.Text, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        _json("details"),
        schema=OPS,
    )
    op.create_table(
        "metric_snapshots",
        _id(),
        _at("taken_at"),
        _json("metrics"),
        schema=OPS,
    )


def _create_journal_tables() -> None:
    op.create_table(
        "archive_index",
        _id(),
        sa.Column("user_id", sa.BigInteger),
        sa.Column("date_from", sa.Date),
        sa.Column("date_to", sa.Date),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("sha256", sa.Text, nullable=False),
        _at("created_at"),
        _json("details"),
        schema=OPS,
    )
    op.create_table(
        "events",
        _id(),
        _at("at"),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, server_default=sa.text("CURRENT_USER")),
        _json("details"),
        schema=OPS,
    )


INDEXES = [
    ("idx_planted_defects_seed_run", "planted_defects", ["seed_run_id"]),
    ("idx_check_runs_kind_started_at", "check_runs", ["kind", "started_at"]),
    ("idx_repairs_run", "repairs", ["run_id"]),
    ("idx_metric_snapshots_taken_at", "metric_snapshots", ["taken_at"]),
    ("idx_archive_index_user", "archive_index", ["user_id"]),
    ("idx_events_kind_at", "events", ["kind", "at"]),
]

TABLES = [
    "events",
    "archive_index",
    "metric_snapshots",
    "repairs",
    "check_runs",
    "planted_defects",
    "seed_runs",
]


def upgrade() -> None:
    _create_seed_tables()
    _create_check_tables()
    _create_journal_tables()
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, schema=OPS)


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table, schema=OPS)
