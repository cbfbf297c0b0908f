"""sequence reads

``powr_readonly`` (and so ``powr_reporting``, the role ``alerts`` runs as) may read the
sequences of ``public`` and ``ops``, now and later: ``pg_sequences`` shows a sequence's
``last_value`` only to a role with SELECT or USAGE on it, and the ``sequences`` alert
(how much of its range each sequence has used) read none of them through the job role.
SELECT on a sequence reads its value; it cannot advance it (``nextval`` needs USAGE or
UPDATE). As in the job roles revision, the DDL audit trail pauses while the grants are
made (a superuser migrating): one per sequence would bury the changes the trail exists to show.

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

# Each sequence this role may grant on (as a member of its owner: a role migrating without
# superuser may not own the POWR tables' sequences, which the job roles revision gave to
# powr_owner); one it may not stays unread, and the sequences alert names it.
_EACH_SEQUENCE = """
DO $$
DECLARE r record;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'powr_readonly') THEN
        RETURN;
    END IF;
    FOR r IN SELECT c.oid::regclass::text AS name FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind = 'S' AND n.nspname IN ('public', 'ops')
               AND pg_has_role(c.relowner, 'USAGE') LOOP
        EXECUTE '{statement}';
    END LOOP;
    ALTER DEFAULT PRIVILEGES IN SCHEMA public, ops {default};
END
$$"""
GRANT = _EACH_SEQUENCE.replace(
    "{statement}", "GRANT SELECT ON SEQUENCE ' || r.name || ' TO powr_readonly"
).replace("{default}", "GRANT SELECT ON SEQUENCES TO powr_readonly")
REVOKE = _EACH_SEQUENCE.replace(
    "{statement}", "REVOKE SELECT ON SEQUENCE ' || r.name || ' FROM powr_readonly"
).replace("{default}", "REVOKE SELECT ON SEQUENCES FROM powr_readonly")


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


def upgrade() -> None:
    op.execute(PAUSE_AUDIT)
    op.execute(GRANT)
    op.execute(RESUME_AUDIT)


def downgrade() -> None:
    op.execute(PAUSE_AUDIT)
    op.execute(REVOKE)
    op.execute(RESUME_AUDIT)
