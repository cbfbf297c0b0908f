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

HISTORY_TABLES = ("ops.check_runs", "ops.events", "ops.metric_snapshots")
AMCHECK_FUNCTIONS = ("bt_index_check", "bt_index_parent_check", "verify_heapam")

CREATE_OWNER = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'powr_owner') THEN
        CREATE ROLE powr_owner LOGIN;
    END IF;
EXCEPTION WHEN duplicate_object THEN NULL;
END
$$"""

# The tables and sequences of schema public, given to (or taken back from) a role. Dynamic
# SQL with ||, not format('%s'): the offline (--sql) output doubles a %.
OWNERSHIP = """
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT c.relname, c.relkind FROM pg_class c
             WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'S')
               AND NOT EXISTS (SELECT 1 FROM pg_depend d
                               WHERE d.objid = c.oid AND d.deptype IN ('a', 'i')
                                 AND c.relkind = 'S')
    LOOP
        EXECUTE 'ALTER ' || CASE WHEN r.relkind = 'S' THEN 'SEQUENCE ' ELSE 'TABLE ' END
                || 'public.' || quote_ident(r.relname) || ' OWNER TO {role}';
    END LOOP;
END
$$"""


def _amcheck(statement: str) -> str:
    """``statement`` (GRANT ... TO / REVOKE ... FROM, with the function left out) run for each
    of amcheck's functions that exists here: the extension may not be installed."""
    names = ", ".join(f"'{name}'" for name in AMCHECK_FUNCTIONS)
    head, tail = statement.split("{function}")
    return f"""
DO $$
DECLARE f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
             WHERE p.proname IN ({names}) AND p.pronamespace <> 'pg_catalog'::regnamespace
    LOOP
        EXECUTE '{head}' || f::text || '{tail}';
    END LOOP;
END
$$"""


GRANTS = f"""
GRANT pg_monitor TO powr_owner;
GRANT pg_monitor TO powr_backup;
GRANT USAGE ON SCHEMA public, ops TO powr_owner;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ops TO powr_owner;
ALTER DEFAULT PRIVILEGES IN SCHEMA ops GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO powr_owner;
GRANT INSERT ON {", ".join(HISTORY_TABLES)} TO powr_reporting;
GRANT EXECUTE ON FUNCTION pg_switch_wal() TO powr_reporting
"""

REVOKES = f"""
REVOKE EXECUTE ON FUNCTION pg_switch_wal() FROM powr_reporting;
REVOKE INSERT ON {", ".join(HISTORY_TABLES)} FROM powr_reporting;
ALTER DEFAULT PRIVILEGES IN SCHEMA ops REVOKE ALL ON TABLES FROM powr_owner;
REVOKE ALL ON ALL TABLES IN SCHEMA ops FROM powr_owner;
REVOKE ALL ON SCHEMA public, ops FROM powr_owner;
REVOKE pg_monitor FROM powr_backup;
REVOKE pg_monitor FROM powr_owner
"""

DROP_OWNER = """
DO $$
BEGIN
    DROP ROLE IF EXISTS powr_owner;
EXCEPTION WHEN dependent_objects_still_exist THEN
    RAISE NOTICE 'powr_owner kept: other databases of this cluster still grant it privileges';
END
$$"""


def upgrade() -> None:
    op.execute(CREATE_OWNER)
    op.execute(OWNERSHIP.replace("{role}", "powr_owner"))
    for statement in GRANTS.split(";"):
        op.execute(statement.strip())
    op.execute(_amcheck("GRANT EXECUTE ON FUNCTION {function} TO powr_reporting, powr_owner"))


def downgrade() -> None:
    op.execute(_amcheck("REVOKE EXECUTE ON FUNCTION {function} FROM powr_reporting, powr_owner"))
    op.execute(OWNERSHIP.replace("{role}", "CURRENT_USER"))
    for statement in REVOKES.split(";"):
        op.execute(statement.strip())
    op.execute(DROP_OWNER)
