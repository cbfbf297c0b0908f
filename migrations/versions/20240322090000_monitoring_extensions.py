"""monitoring extensions

The extensions the checks and reports read from: ``pg_stat_statements`` (slow statements for
the query-time alerts), ``amcheck`` (B-tree and heap verification) and ``pgstattuple`` (bloat).
Each is created only where the server offers it and the migrating role may create it; where it
cannot be, a NOTICE says so and the readiness report shows it missing, rather than the whole
migration failing on a managed server that restricts extensions.

The downgrade drops the extensions this revision created, as recorded in ``ops.events``, and
leaves alone any that were there before it.

Revision ID: 20240322090000
Revises: 20240320100000
Create Date: 2024-03-22 09:00:00
"""

from __future__ import annotations

from alembic import op

revision = "20240322090000"
down_revision = "20240320100000"
branch_labels = None
depends_on = None

transaction = True

EXTENSIONS = ("pg_stat_statements", "amcheck", "pgstattuple")


def upgrade() -> None:
    for name in EXTENSIONS:
        op.execute(
            f"""
            DO $$
            BEGIN
                IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = '{name}') THEN
                    RETURN;
                END IF;
                IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = '{name}') THEN
                    RAISE NOTICE USING MESSAGE = 'extension {name} is not available on this server';
                    RETURN;
                END IF;
                CREATE EXTENSION {name};
                INSERT INTO ops.events (kind, actor, details)
                VALUES ('extension_created', current_user,
                        jsonb_build_object('extension', '{name}'));
            EXCEPTION WHEN insufficient_privilege THEN
                RAISE NOTICE USING MESSAGE = 'not allowed to create extension {name}: ' || SQLERRM;
            END
            $$
            """
        )


def downgrade() -> None:
    for name in EXTENSIONS:
        op.execute(
            f"""
            DO $$
            BEGIN
                IF EXISTS (SELECT 1 FROM ops.events WHERE kind = 'extension_created'
                           AND details ->> 'extension' = '{name}') THEN
                    DROP EXTENSION IF EXISTS {name};
                    DELETE FROM ops.events WHERE kind = 'extension_created'
                        AND details ->> 'extension' = '{name}';
                END IF;
            END
            $$
            """
        )
