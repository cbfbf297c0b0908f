"""Alembic environment for the POWR schema.

Three ways in:

* from code (``powrops.migrate.plan``): a live SQLAlchemy connection in
  ``config.attributes["connection"]``, so drills, tests and production share one path;
* alembic's command line: the URL from ``POWROPS_DATABASE_URL`` (or ``sqlalchemy.url``);
* offline (``--sql``): SQL text for PostgreSQL, written to the output buffer, no database.

Alembic's version table lives in schema ``ops``. Every revision runs in its own transaction
(``transaction_per_migration``); a revision whose module says ``transaction = False`` does its
work inside ``op.get_context().autocommit_block()``.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection, create_engine, pool, text

from powrops.migrate.plan import sqlalchemy_url
from powrops.schema import include_name, metadata
from powrops.tables import OPS_SCHEMA

config = context.config

if config.cmd_opts is not None and config.config_file_name is not None:
    # Only alembic's own command line configures logging; code that calls powrops keeps its own.
    fileConfig(config.config_file_name, disable_existing_loggers=False)

COMMON_OPTIONS = {
    "target_metadata": metadata,
    "version_table_schema": OPS_SCHEMA,
    "transaction_per_migration": True,
    "include_schemas": True,
    "include_name": include_name,
    "compare_type": True,
}


def run_offline() -> None:
    """Write the SQL of the requested migrations instead of running it."""
    context.configure(dialect_name="postgresql", literal_binds=True, **COMMON_OPTIONS)
    if not context.get_starting_revision_argument():
        context.execute(f"CREATE SCHEMA IF NOT EXISTS {OPS_SCHEMA}")
    with context.begin_transaction():
        context.run_migrations()


def ensure_ops_schema(connection: Connection) -> None:
    """Create schema ``ops`` (home of the version table) when it is missing."""
    outside = not connection.in_transaction()
    found = connection.execute(
        text("SELECT 1 FROM pg_namespace WHERE nspname = :name"), {"name": OPS_SCHEMA}
    ).first()
    if found is None:
        connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {OPS_SCHEMA}"))
    if outside:
        connection.commit()


def run_on(connection: Connection) -> None:
    ensure_ops_schema(connection)
    context.configure(connection=connection, **COMMON_OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        run_on(connection)
        return
    url = sqlalchemy_url(
        os.environ.get("POWROPS_DATABASE_URL") or config.get_main_option("sqlalchemy.url")
    )
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            run_on(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
