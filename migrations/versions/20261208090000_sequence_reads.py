"""sequence reads

``powr_readonly`` (and so ``powr_reporting``, the role ``alerts`` runs as) may read the
sequences of ``public`` and ``ops``, now and later: ``pg_sequences`` shows a sequence's
``last_value`` only to a role with SELECT or USAGE on it, and the ``sequences`` alert
(how much of its range each sequence has used) read none of them through the job role.
SELECT on a sequence reads its value; it cannot advance it (``nextval`` needs USAGE or
UPDATE). The grants are kept in the DDL audit trail, as changes to access control.

Revision ID: 20261208090000
Revises: 20251201090000
Create Date: 2026-12-08 09:00:00
"""

from __future__ import annotations

from alembic import op

revision = "20261208090000"
down_revision = "20251201090000"
branch_labels = None
depends_on = None

transaction = True

GRANT = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'powr_readonly') THEN
        GRANT SELECT ON ALL SEQUENCES IN SCHEMA public, ops TO powr_readonly;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public, ops
            GRANT SELECT ON SEQUENCES TO powr_readonly;
    END IF;
END
$$"""

REVOKE = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'powr_readonly') THEN
        ALTER DEFAULT PRIVILEGES IN SCHEMA public, ops
            REVOKE SELECT ON SEQUENCES FROM powr_readonly;
        REVOKE SELECT ON ALL SEQUENCES IN SCHEMA public, ops FROM powr_readonly;
    END IF;
END
$$"""


def upgrade() -> None:
    op.execute(GRANT)


def downgrade() -> None:
    op.execute(REVOKE)
