"""audit trail

The strategy's audit trails, installed in the database:

- ``public.powrops_audit_row()`` and a row trigger ``powrops_audit_row`` on each POWR table
  that holds user data (users, exercises, workouts, workout_sets, user_totals, consents):
  every INSERT, UPDATE and DELETE becomes one ``audit_log`` row with the time, the actor
  (``powrops.actor`` when a session sets it, else the database role), the action, the table,
  the row id and the old and new row as jsonb (a second trigger argument, which
  ``powrops audit apply`` sets from ``audit.metadata``, can leave out the actor or the old or
  new values). A transaction that sets
  ``powrops.audit_rows = off`` (powrops' bulk operations, which write their own summary) is
  skipped. Seeding with ``session_replication_role = replica`` does not fire them.
- An event trigger for system changes: ``ddl_command_end`` and ``sql_drop`` write
  ``action = 'DDL'`` rows with the command tag and the object's identity. Creating event
  triggers needs a superuser: for any other migrating role the revision skips them with a
  NOTICE and the integrity check ``audit_trail`` reports them missing.
- ``ops.quarantine``: rows the integrity repair moved out of the POWR tables (orphans), with the
  run, the table, the row id, the whole row as jsonb and the reason, so nothing is deleted
  without being kept.

The downgrade removes all of it.

Revision ID: 20240401090000
Revises: 20240322090000
Create Date: 2024-04-01 09:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "20240401090000"
down_revision = "20240322090000"
branch_labels = None
depends_on = None

transaction = True

AUDITED_TABLES = {
    "users": "id",
    "exercises": "id",
    "workouts": "id",
    "workout_sets": "id",
    "user_totals": "user_id",
    "consents": "id",
}

ROW_FUNCTION = """
CREATE OR REPLACE FUNCTION public.powrops_audit_row() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$
DECLARE
    old_row jsonb;
    new_row jsonb;
    kept text[] := CASE WHEN TG_NARGS > 1 THEN string_to_array(TG_ARGV[1], ',')
                        ELSE ARRAY['user_id', 'old_value', 'new_value'] END;
BEGIN
    IF current_setting('powrops.audit_rows', true) = 'off' THEN
        RETURN NULL;
    END IF;
    IF TG_OP <> 'INSERT' THEN
        old_row := to_jsonb(OLD);
    END IF;
    IF TG_OP <> 'DELETE' THEN
        new_row := to_jsonb(NEW);
    END IF;
    IF TG_OP = 'UPDATE' AND old_row = new_row THEN
        RETURN NULL;
    END IF;
    INSERT INTO public.audit_log (occurred_at, actor, action, table_name, row_id,
                                  old_value, new_value)
    VALUES (now(),
            CASE WHEN 'user_id' = ANY(kept) THEN
                coalesce(nullif(current_setting('powrops.actor', true), ''), current_user::text)
            END,
            TG_OP, TG_TABLE_NAME, coalesce(new_row, old_row) ->> TG_ARGV[0],
            CASE WHEN 'old_value' = ANY(kept) THEN old_row END,
            CASE WHEN 'new_value' = ANY(kept) THEN new_row END);
    RETURN NULL;
END
$$
"""

DDL_FUNCTIONS = """
CREATE OR REPLACE FUNCTION public.powrops_audit_ddl() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
        CONTINUE WHEN starts_with(r.schema_name, 'pg_temp');
        INSERT INTO public.audit_log (occurred_at, actor, action, table_name, row_id, details)
        VALUES (now(),
                coalesce(nullif(current_setting('powrops.actor', true), ''), session_user::text),
                'DDL',
                CASE WHEN r.classid = 'pg_class'::regclass
                     THEN (SELECT c.relname::text FROM pg_class c WHERE c.oid = r.objid) END,
                r.object_identity,
                jsonb_build_object('command_tag', r.command_tag, 'object_type', r.object_type,
                                   'object_identity', r.object_identity,
                                   'schema', r.schema_name, 'in_extension', r.in_extension));
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION public.powrops_audit_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT * FROM pg_event_trigger_dropped_objects()
             WHERE original AND NOT is_temporary LOOP
        INSERT INTO public.audit_log (occurred_at, actor, action, table_name, row_id, details)
        VALUES (now(),
                coalesce(nullif(current_setting('powrops.actor', true), ''), session_user::text),
                'DDL',
                CASE WHEN r.object_type = 'table' THEN r.object_name
                     WHEN r.object_type IN ('table constraint', 'table column')
                     THEN r.address_names[2] END,
                r.object_identity,
                jsonb_build_object('command_tag', tg_tag, 'object_type', r.object_type,
                                   'object_identity', r.object_identity,
                                   'schema', r.schema_name));
    END LOOP;
END
$$
"""

EVENT_TRIGGERS = """
DO $$
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RAISE NOTICE USING MESSAGE = 'the DDL audit event triggers need a superuser: not '
            'installed (the integrity check audit_trail reports them missing)';
        RETURN;
    END IF;
    CREATE EVENT TRIGGER powrops_audit_ddl ON ddl_command_end
        EXECUTE FUNCTION public.powrops_audit_ddl();
    CREATE EVENT TRIGGER powrops_audit_drop ON sql_drop
        EXECUTE FUNCTION public.powrops_audit_drop();
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "quarantine",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), primary_key=True),
        sa.Column("run_id", sa.BigInteger, sa.ForeignKey("ops.check_runs.id", ondelete="SET NULL")),
        sa.Column(
            "quarantined_at",
            sa.DateTime(timezone=True),
            nullable=False,
            server_default=sa.text("now()"),
        ),
        sa.Column("table_name", sa.Text, nullable=False),
        sa.Column("row_id", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("row", postgresql.JSONB, nullable=False),
        schema="ops",
    )
    op.create_index("idx_quarantine_run", "quarantine", ["run_id"], schema="ops")
    op.create_index(
        "idx_quarantine_table_row", "quarantine", ["table_name", "row_id"], schema="ops"
    )
    op.execute(ROW_FUNCTION)
    for table, key in AUDITED_TABLES.items():
        op.execute(
            f"CREATE TRIGGER powrops_audit_row AFTER INSERT OR UPDATE OR DELETE "
            f"ON public.{table} FOR EACH ROW EXECUTE FUNCTION public.powrops_audit_row('{key}')"
        )
    op.execute(DDL_FUNCTIONS)
    op.execute(EVENT_TRIGGERS)


def downgrade() -> None:
    op.execute("DROP EVENT TRIGGER IF EXISTS powrops_audit_drop")
    op.execute("DROP EVENT TRIGGER IF EXISTS powrops_audit_ddl")
    op.execute("DROP FUNCTION IF EXISTS public.powrops_audit_drop()")
    op.execute("DROP FUNCTION IF EXISTS public.powrops_audit_ddl()")
    for table in AUDITED_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS powrops_audit_row ON public.{table}")
    op.execute("DROP FUNCTION IF EXISTS public.powrops_audit_row()")
    op.drop_table("quarantine", schema="ops")
