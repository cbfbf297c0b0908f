"""roles

Least-privilege roles (the strategy's access control):

* ``powr_readonly`` (NOLOGIN group): reads every table in ``public`` and ``ops``, now and later,
  and sees server statistics through ``pg_monitor``;
* ``powr_reporting`` (LOGIN): member of ``powr_readonly``, the role scheduled reports use;
* ``powr_backup`` (LOGIN, REPLICATION): base backups, WAL switches and restore points;
* ``powr_app`` (LOGIN): the application's reads and writes of ``public``.

Roles belong to the whole cluster while grants belong to one database, so the upgrade creates a
role only when it is missing, and the downgrade revokes this database's grants and drops the
roles only when no other database still grants them anything. No passwords here: whoever runs
the cluster sets them (``ALTER ROLE ... PASSWORD``) or maps logins to certificates.

Revision ID: 20240320100000
Revises: 20240315090000
Create Date: 2024-03-20 10:00:00
"""

from __future__ import annotations

from alembic import op

revision = "20240320100000"
down_revision = "20240315090000"
branch_labels = None
depends_on = None

transaction = True

ROLES = {
    "powr_readonly": "NOLOGIN",
    "powr_reporting": "LOGIN",
    "powr_backup": "LOGIN REPLICATION",
    "powr_app": "LOGIN",
}

BACKUP_FUNCTIONS = (
    "SELECT p.oid::regprocedure FROM pg_proc p"
    " WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname IN"
    " ('pg_backup_start', 'pg_backup_stop', 'pg_switch_wal', 'pg_create_restore_point')"
)
POWR_ROLES = ", ".join(f"'{name}'" for name in ROLES)

GRANTS = """
GRANT pg_monitor TO powr_readonly;
GRANT powr_readonly TO powr_reporting;
GRANT pg_read_all_settings TO powr_backup;
GRANT USAGE ON SCHEMA public, ops TO powr_readonly;
GRANT SELECT ON ALL TABLES IN SCHEMA public, ops TO powr_readonly;
ALTER DEFAULT PRIVILEGES IN SCHEMA public, ops GRANT SELECT ON TABLES TO powr_readonly;
GRANT USAGE ON SCHEMA public TO powr_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO powr_app;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO powr_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO powr_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE ON SEQUENCES TO powr_app
"""


def _create_role(name: str, attributes: str) -> str:
    # duplicate_object: another database's migration created it at the same moment.
    return f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{name}') THEN
        CREATE ROLE {name} {attributes};
    END IF;
EXCEPTION WHEN duplicate_object THEN NULL;
END
$$"""


# Dynamic SQL is built with || and quote_ident, not format('%s'): a % would be doubled in
# the offline (--sql) output that DBAs read and run.
GRANT_BACKUP_FUNCTIONS = f"""
DO $$
DECLARE f regprocedure;
BEGIN
    FOR f IN {BACKUP_FUNCTIONS} LOOP
        EXECUTE 'GRANT EXECUTE ON FUNCTION ' || f::text || ' TO powr_backup';
    END LOOP;
END
$$"""

REVOKE_ALL = f"""
DO $$
DECLARE r text; f regprocedure;
BEGIN
    FOR r IN SELECT quote_ident(rolname) FROM pg_roles WHERE rolname IN ({POWR_ROLES}) LOOP
        EXECUTE 'ALTER DEFAULT PRIVILEGES IN SCHEMA public, ops REVOKE ALL ON TABLES FROM ' || r;
        EXECUTE 'ALTER DEFAULT PRIVILEGES IN SCHEMA public, ops REVOKE ALL ON SEQUENCES FROM ' || r;
        EXECUTE 'REVOKE ALL ON ALL TABLES IN SCHEMA public, ops FROM ' || r;
        EXECUTE 'REVOKE ALL ON ALL SEQUENCES IN SCHEMA public, ops FROM ' || r;
        EXECUTE 'REVOKE ALL ON SCHEMA public, ops FROM ' || r;
        FOR f IN {BACKUP_FUNCTIONS} LOOP
            EXECUTE 'REVOKE ALL ON FUNCTION ' || f::text || ' FROM ' || r;
        END LOOP;
    END LOOP;
END
$$"""

# All or none: the exception block rolls back every DROP when one role is still used by
# another database (its privileges there are recorded in the shared catalog pg_shdepend).
DROP_UNUSED_ROLES = f"""
DO $$
BEGIN
    DROP ROLE IF EXISTS {", ".join(reversed(ROLES))};
EXCEPTION WHEN dependent_objects_still_exist THEN
    RAISE NOTICE 'powr roles kept: other databases of this cluster still grant them privileges';
END
$$"""


def upgrade() -> None:
    for name, attributes in ROLES.items():
        op.execute(_create_role(name, attributes))
    for statement in GRANTS.split(";"):
        op.execute(statement.strip())
    op.execute(GRANT_BACKUP_FUNCTIONS)


def downgrade() -> None:
    op.execute(REVOKE_ALL)
    op.execute(DROP_UNUSED_ROLES)
