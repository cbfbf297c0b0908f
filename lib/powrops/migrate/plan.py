"""Schema migrations: alembic, run from code with a live connection.

These are the strategy's ``migrate:*`` scripts — ``upgrade`` (latest), ``rollback``,
``status`` — plus ``offline_sql`` to show the SQL of a change before it runs. Every function
takes a SQLAlchemy URL or an Engine; every failure becomes a :class:`MigrationError` whose
message names what went wrong (never the password).

Revision ids are UTC timestamps (``YYYYMMDDHHMMSS``) and each revision module declares
``transaction = True | False``, the strategy's ``MigrationFile`` fields. The alembic
environment is found in ``<project root>/migrations``, the root being ``POWROPS_PROJECT_ROOT``
or the checkout this package is installed from.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, create_engine, make_url, pool, text
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from powrops import bundle
from powrops.errors import MigrationError, database_message, one_line
from powrops.pg.cluster import CLIENT_ENCODING
from powrops.schema import include_name, metadata
from powrops.tables import OPS_SCHEMA

__all__ = [
    "Revision",
    "RevisionStatus",
    "alembic_config",
    "current",
    "downgrade",
    "heads",
    "offline_sql",
    "revision_sql",
    "revision_timestamp",
    "revision_transaction",
    "revisions",
    "rollback",
    "schema_diff",
    "sqlalchemy_url",
    "status",
    "upgrade",
    "upgrade_with_session",
]

REVISION_ID = re.compile(r"^\d{14}$")
CONNECT_TIMEOUT_S = 10
AlembicErrors = (CommandError, RevisionError)


@dataclass(frozen=True)
class Revision:
    """One migration script: the strategy's MigrationFile (timestamp, name, transaction)."""

    revision: str
    slug: str
    doc: str
    timestamp: datetime
    is_head: bool
    transaction: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (the timestamp as ISO 8601)."""
        return {**asdict(self), "timestamp": self.timestamp.isoformat()}


@dataclass(frozen=True)
class RevisionStatus(Revision):
    """A revision and whether the database has it applied, as ``status`` reports it."""

    applied: bool


# -- configuration -------------------------------------------------------------------------


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's Config for the POWR migrations, running on ``connection`` when given."""
    location = bundle.folder("migrations")
    if not (location / "env.py").is_file():
        raise MigrationError(
            f"no alembic environment in {location}; set {bundle.CHECKOUT_ENV} to a checkout "
            "that holds alembic.ini and migrations/"
        )
    root = bundle.checkout()
    ini = root / "alembic.ini" if root is not None else None
    config = Config(str(ini) if ini is not None and ini.is_file() else None)
    config.set_main_option("script_location", str(location).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def sqlalchemy_url(url: str | None) -> str:
    """``url`` for SQLAlchemy with the psycopg 3 driver (libpq-style URLs are accepted)."""
    if not url:
        raise MigrationError("no database URL: pass one or set POWROPS_DATABASE_URL")
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _redacted(url: Any) -> str:
    try:
        return str(make_url(url).render_as_string(hide_password=True))
    except (ArgumentError, ValueError):
        return "<unparseable URL>"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return one_line(str(exc.orig))
    return one_line(str(exc))


def _read_failed(exc: BaseException) -> str:
    """Why a read of the schema failed, in one line with what to do where the error says."""
    return database_message(exc.orig if isinstance(exc, DBAPIError) and exc.orig else exc)


# -- connections ---------------------------------------------------------------------------


@contextmanager
def _engine(target: Engine | str) -> Iterator[Engine]:
    if isinstance(target, Engine):
        yield target
        return
    url = sqlalchemy_url(target)
    try:
        engine = create_engine(
            url,
            poolclass=pool.NullPool,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_S, "client_encoding": CLIENT_ENCODING},
        )
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        raise MigrationError(f"not a usable database URL {_redacted(url)}: {exc}") from exc
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def _connection(target: Engine | str) -> Iterator[Connection]:
    with _engine(target) as engine:
        try:
            conn = engine.connect()
        except SQLAlchemyError as exc:
            where = _redacted(engine.url)
            raise MigrationError(f"cannot connect to {where}: {_reason(exc)}", url=where) from exc
        try:
            yield conn
        finally:
            conn.close()


def _current_heads(conn: Connection) -> tuple[str, ...]:
    try:
        context = MigrationContext.configure(conn, opts={"version_table_schema": OPS_SCHEMA})
        return tuple(context.get_current_heads())
    except SQLAlchemyError as exc:
        raise MigrationError(f"cannot read the schema version: {_read_failed(exc)}") from exc
    finally:
        conn.rollback()


def _run(target: Engine | str, what: str, run: Callable[[Config], None]) -> str | None:
    """Run an alembic command on one connection; the revision the database is at after it."""
    with _connection(target) as conn:
        try:
            run(alembic_config(conn))
            conn.commit()
        except AlembicErrors as exc:
            raise MigrationError(f"cannot {what}: {exc}") from exc
        except SQLAlchemyError as exc:
            conn.rollback()
            now_at = _joined(_current_heads(conn)) or "base"
            raise MigrationError(
                f"{what} failed (the database is now at {now_at}): {_reason(exc)}",
                revision=now_at,
            ) from exc
        return _joined(_current_heads(conn))


def _joined(revisions: tuple[str, ...]) -> str | None:
    return ",".join(revisions) or None


# -- commands ------------------------------------------------------------------------------


def upgrade(engine_or_url: Engine | str, target: str = "head") -> str | None:
    """Apply pending migrations up to ``target``; the revision the database is now at."""
    return _run(engine_or_url, f"upgrade to {target}", lambda cfg: command.upgrade(cfg, target))


def upgrade_with_session(
    engine_or_url: Engine | str, session: Mapping[str, str], target: str = "head"
) -> str | None:
    """:func:`upgrade` on a connection with ``session`` settings set first (``lock_timeout``,
    ``statement_timeout``): they hold for every revision, transactional or not."""
    return _with_session(engine_or_url, session, "upgrade", target)


def downgrade_with_session(
    engine_or_url: Engine | str, session: Mapping[str, str], target: str
) -> str | None:
    """:func:`downgrade` with ``session`` settings set first, as :func:`upgrade_with_session`."""
    return _with_session(engine_or_url, session, "downgrade", target)


def _with_session(
    engine_or_url: Engine | str, session: Mapping[str, str], direction: str, target: str
) -> str | None:
    def run(config: Config) -> None:
        conn: Connection = config.attributes["connection"]
        for name, value in session.items():
            conn.execute(
                text("SELECT set_config(:name, :value, false)"), {"name": name, "value": value}
            )
        conn.commit()
        (command.upgrade if direction == "upgrade" else command.downgrade)(config, target)

    return _run(engine_or_url, f"{direction} to {target}", run)


def downgrade(engine_or_url: Engine | str, target: str = "-1") -> str | None:
    """Roll back to ``target`` (default: one revision back); the revision now current."""
    return _run(engine_or_url, f"downgrade to {target}", lambda cfg: command.downgrade(cfg, target))


def rollback(engine_or_url: Engine | str) -> str | None:
    """Roll back the last applied migration (the strategy's ``migrate:rollback``)."""
    return downgrade(engine_or_url, "-1")


def current(engine_or_url: Engine | str) -> str | None:
    """The revision the database is at, or None before the first migration."""
    with _connection(engine_or_url) as conn:
        return _joined(_current_heads(conn))


def _script() -> ScriptDirectory:
    try:
        return ScriptDirectory.from_config(alembic_config())
    except AlembicErrors as exc:
        raise MigrationError(f"cannot read the migration scripts: {exc}") from exc


def heads() -> list[str]:
    """The head revision(s) of the migration scripts (one, unless history has branched)."""
    return list(_script().get_heads())


def revision_timestamp(revision: str) -> datetime:
    """The UTC time a revision id (``YYYYMMDDHHMMSS``) stands for."""
    if not REVISION_ID.match(revision):
        raise MigrationError(f"revision id {revision!r} is not a timestamp YYYYMMDDHHMMSS")
    try:
        return datetime.strptime(revision, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    except ValueError as exc:
        raise MigrationError(f"revision id {revision!r} is not a valid time: {exc}") from exc


def revision_transaction(script: Script) -> bool:
    """The ``transaction`` flag a revision module declares."""
    flag = getattr(script.module, "transaction", None)
    if not isinstance(flag, bool):
        raise MigrationError(
            f"revision {script.revision} ({script.path}) must declare "
            "`transaction = True` or `transaction = False`"
        )
    return flag


def _applied(scripts: ScriptDirectory, at: tuple[str, ...]) -> set[str]:
    try:
        return {s.revision for s in scripts.revision_map.iterate_revisions(at, "base")}
    except AlembicErrors as exc:
        raise MigrationError(
            f"the database is at {_joined(at)}, which these migration scripts do not know "
            f"(is this checkout older than the database?): {exc}"
        ) from exc


def _revisions(scripts: ScriptDirectory) -> list[Revision]:
    head_ids = set(scripts.get_heads())
    return [
        Revision(
            revision=s.revision,
            slug=Path(s.path).stem.partition("_")[2],
            doc=s.doc,
            timestamp=revision_timestamp(s.revision),
            is_head=s.revision in head_ids,
            transaction=revision_transaction(s),
        )
        for s in reversed(list(scripts.walk_revisions()))
    ]


def revisions() -> list[Revision]:
    """Every migration script, oldest first (no database needed)."""
    return _revisions(_script())


def status(engine_or_url: Engine | str) -> list[RevisionStatus]:
    """Every revision, oldest first, with whether it is applied to the database."""
    scripts = _script()
    with _connection(engine_or_url) as conn:
        applied = _applied(scripts, _current_heads(conn))
    return [RevisionStatus(**vars(r), applied=r.revision in applied) for r in _revisions(scripts)]


def offline_sql(from_rev: str | None, to_rev: str = "head", downgrade: bool = False) -> str:
    """The SQL that migrating from ``from_rev`` (None: base) to ``to_rev`` would run."""
    if downgrade and not from_rev:
        raise MigrationError("offline downgrade SQL needs the revision to start from")
    config = alembic_config()
    buffer = io.StringIO()
    config.output_buffer = buffer
    span = f"{from_rev}:{to_rev}" if from_rev else to_rev
    run = command.downgrade if downgrade else command.upgrade
    try:
        run(config, span, sql=True)
    except AlembicErrors as exc:
        raise MigrationError(f"cannot render SQL for {span}: {exc}") from exc
    return buffer.getvalue()


def revision_sql(revision: str, downgrade: bool = False) -> str:
    """The SQL of one revision alone (its upgrade, or its downgrade), rendered offline."""
    try:
        script = _script().get_revision(revision)
    except AlembicErrors as exc:
        raise MigrationError(f"unknown revision {revision!r}: {exc}") from exc
    if script is None:
        raise MigrationError(f"unknown revision {revision!r}")
    down = script.down_revision
    if not (down is None or isinstance(down, str)):
        raise MigrationError(f"revision {revision} merges branches; render it whole")
    if downgrade:
        return offline_sql(revision, down or "base", downgrade=True)
    return offline_sql(down, revision)


def schema_diff(engine_or_url: Engine | str) -> list[Any]:
    """Differences between :mod:`powrops.schema` and the database (alembic autogenerate)."""
    with _connection(engine_or_url) as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_schemas": True,
                "include_name": include_name,
                "version_table_schema": OPS_SCHEMA,
                "compare_type": True,
                "compare_server_default": True,
            },
        )
        try:
            return list(compare_metadata(context, metadata))
        except SQLAlchemyError as exc:
            raise MigrationError(f"cannot compare the schema: {_read_failed(exc)}") from exc
        finally:
            conn.rollback()
