"""job roles

Each scheduled job runs under the least-privileged role that can do it:

* ``powr_reporting`` (reports, alerts, verification, the integrity check, drills): read-only on
  POWR data through ``powr_readonly`` and ``pg_monitor``, EXECUTE on amcheck's functions and on
  ``pg_switch_wal()`` (a drill closes the WAL segment holding its target so that it is
  archived), and INSERT only on powrops' own history tables (``ops.check_runs``,
  ``ops.events``, ``ops.metric_snapshots``);
* ``powr_backup`` (backups and WAL): REPLICATION, the backup functions and
  ``pg_read_all_settings`` from the roles revision, and ``pg_monitor`` for the server's
  statistics (connections, archiver);
* ``powr_owner`` (maintenance, retention, cleanup, repairs): a new LOGIN role that owns the
  POWR tables and their sequences (VACUUM, ANALYZE and REINDEX need the owner), writes
  powrops' own tables in ``ops``, reads the statistics through ``pg_monitor`` and runs
  amcheck (a repair checks first).

Objects that need a superuser to create (event triggers) stay with the migrating role. The
downgrade gives the tables back to the migrating role, revokes these grants and drops
``powr_owner`` when no other database still uses it.

Revision ID: 20241204090000
Revises: 20240401090000
Create Date: 2024-12-04 09:00:00
"""

from __future__ import annotations

from alembic import op

revision = "20241204090000"
down_revision = "20240401090000"
branch_labels = None
depends_on = None

transaction = True

HISTORY_TABLES = "ops.check_runs, ops.events, ops.metric_snapshots"
AMCHECK_FUNCTIONS = "'bt_index_check', 'bt_index_parent_check', 'verify_heapam'"

# Roles, ownership and grants need a superuser: for any other migrating role the revision
# changes nothing and says so (as the audit revision does for its event triggers), and the
# readiness report shows powr_owner missing. The DDL audit trail pauses for this transaction:
# its ~25 ownership changes and grants would bury the changes the trail exists to show
# (ALTER EVENT TRIGGER is itself not an audited event). Dynamic SQL is built with ||, not
# format('%s'): the offline (--sql) output doubles a %.
UPGRADE = f"""
DO $$
DECLARE r record; f regprocedure;
BEGIN
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RAISE NOTICE USING MESSAGE = 'the job roles need a superuser: not set up (the tables '
            'keep their owner; the readiness report shows powr_owner missing)';
        RETURN;
    END IF;
    FOR r IN SELECT evtname FROM pg_event_trigger
             WHERE evtname IN ('powrops_audit_ddl', 'powrops_audit_drop') LOOP
        EXECUTE 'ALTER EVENT TRIGGER ' || quote_ident(r.evtname) || ' DISABLE';
    END LOOP;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'powr_owner') THEN
        CREATE ROLE powr_owner LOGIN;
    END IF;
    FOR r IN SELECT c.relname, c.relkind FROM pg_class c
             WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'S')
               AND NOT (c.relkind = 'S' AND EXISTS (
                   SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')))
    LOOP
        EXECUTE 'ALTER ' || CASE WHEN r.relkind = 'S' THEN 'SEQUENCE ' ELSE 'TABLE ' END
                || 'public.' || quote_ident(r.relname) || ' OWNER TO powr_owner';
    END LOOP;
    GRANT pg_monitor TO powr_owner;
    GRANT pg_monitor TO powr_backup;
    GRANT USAGE ON SCHEMA public, ops TO powr_owner;
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ops TO powr_owner;
    ALTER DEFAULT PRIVILEGES IN SCHEMA ops
        GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO powr_owner;
    GRANT INSERT ON {HISTORY_TABLES} TO powr_reporting;
    GRANT EXECUTE ON FUNCTION pg_switch_wal() TO powr_reporting;
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
             WHERE p.proname IN ({AMCHECK_FUNCTIONS})
               AND p.pronamespace <> 'pg_catalog'::regnamespace LOOP
        EXECUTE 'GRANT EXECUTE ON FUNCTION ' || f::text || ' TO powr_reporting, powr_owner';
    END LOOP;
    FOR r IN SELECT evtname FROM pg_event_trigger
             WHERE evtname IN ('powrops_audit_ddl', 'powrops_audit_drop') LOOP
        EXECUTE 'ALTER EVENT TRIGGER ' || quote_ident(r.evtname) || ' ENABLE';
    END LOOP;
END
$$"""

# The downgrade gives the tables back to the migrating role and drops powr_owner only when no
# other database still uses it (its privileges there are recorded in pg_shdepend).
DOWNGRADE = f"""
DO $$
DECLARE r record; f regprocedure;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'powr_owner')
       OR NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RETURN;
    END IF;
    FOR r IN SELECT evtname FROM pg_event_trigger
             WHERE evtname IN ('powrops_audit_ddl', 'powrops_audit_drop') LOOP
        EXECUTE 'ALTER EVENT TRIGGER ' || quote_ident(r.evtname) || ' DISABLE';
    END LOOP;
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
             WHERE p.proname IN ({AMCHECK_FUNCTIONS})
               AND p.pronamespace <> 'pg_catalog'::regnamespace LOOP
        EXECUTE 'REVOKE EXECUTE ON FUNCTION ' || f::text || ' FROM powr_reporting, powr_owner';
    END LOOP;
    FOR r IN SELECT c.relname, c.relkind FROM pg_class c
             WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'S')
               AND pg_get_userbyid(c.relowner) = 'powr_owner'
               AND NOT (c.relkind = 'S' AND EXISTS (
                   SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')))
    LOOP
        EXECUTE 'ALTER ' || CASE WHEN r.relkind = 'S' THEN 'SEQUENCE ' ELSE 'TABLE ' END
                || 'public.' || quote_ident(r.relname) || ' OWNER TO ' || quote_ident(current_user);
    END LOOP;
    REVOKE EXECUTE ON FUNCTION pg_switch_wal() FROM powr_reporting;
    REVOKE INSERT ON {HISTORY_TABLES} FROM powr_reporting;
    ALTER DEFAULT PRIVILEGES IN SCHEMA ops REVOKE ALL ON TABLES FROM powr_owner;
    REVOKE ALL ON ALL TABLES IN SCHEMA ops FROM powr_owner;
    REVOKE ALL ON SCHEMA public, ops FROM powr_owner;
    REVOKE pg_monitor FROM powr_backup;
    REVOKE pg_monitor FROM powr_owner;
    BEGIN
        DROP ROLE powr_owner;
    EXCEPTION WHEN dependent_objects_still_exist THEN
        RAISE NOTICE 'powr_owner kept: other databases of this cluster still grant it privileges';
    END;
    FOR r IN SELECT evtname FROM pg_event_trigger
             WHERE evtname IN ('powrops_audit_ddl', 'powrops_audit_drop') LOOP
        EXECUTE 'ALTER EVENT TRIGGER ' || quote_ident(r.evtname) || ' ENABLE';
    END LOOP;
END
$$"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
