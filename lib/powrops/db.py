"""Database connections: the configured server, or the embedded default.

When ``database.url`` is set, powrops talks to that server. Otherwise it uses the embedded
cluster under the state directory, which only ``powrops db start`` and ``powrops demo`` create
and start (``pg/embedded.py``). Finding and connecting to the target changes nothing: a missing
or stopped embedded cluster is a DatabaseError (exit 3) saying how to start it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from powrops.config import Settings, secret_values
from powrops.errors import DatabaseError, one_line
from powrops.format import describe_target
from powrops.pg import control, pgpass
from powrops.pg.cluster import CLIENT_ENCODING
from powrops.pg.embedded import START_HINT, embedded_cluster, job_passfile

if TYPE_CHECKING:
    import psycopg
    import sqlalchemy


@dataclass(frozen=True)
class Target:
    """Where the database is: a libpq-style URL and whether it is the embedded default."""

    url: str
    embedded: bool

    @property
    def sqlalchemy_url(self) -> str:
        scheme, rest = self.url.split("://", 1)
        if scheme in ("postgres", "postgresql"):
            scheme = "postgresql+psycopg"
        return f"{scheme}://{rest}"

    @property
    def libpq_url(self) -> str:
        scheme, rest = self.url.split("://", 1)
        return f"postgresql://{rest}" if scheme.startswith("postgres") else self.url

    @property
    def password(self) -> str | None:
        parts = urlsplit(self.libpq_url)
        return unquote(parts.password) if parts.password else None

    @property
    def display(self) -> str:
        """The URL without its password, for logs and reports."""
        parts = urlsplit(self.libpq_url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        user = f"{parts.username}@" if parts.username else ""
        return f"postgresql://{user}{host}{port}{parts.path}"


def target(settings: Settings) -> Target:
    """The database powrops works on: ``database.url``, else the embedded cluster.

    Only finds it: nothing is created, started or reconfigured. Without a configured URL
    and without an embedded cluster, it stops (DatabaseError, exit 3) saying how to
    configure one, rather than act on a new, empty cluster somewhere unexpected.
    """
    if settings.database.url is not None:
        url = settings.database.url.get_secret_value()
        if not url.startswith(("postgres://", "postgresql://", "postgresql+psycopg://")):
            raise DatabaseError(
                "database.url must start with postgresql:// (got a URL with scheme "
                f"{url.split('://', 1)[0]!r})"
            )
        return Target(_as_role(url, settings.database.role), embedded=False)
    cluster = embedded_cluster(settings)
    if not cluster.exists():
        raise DatabaseError(
            f"no database configured: database.url (or POWROPS_DATABASE_URL) is not set and "
            f"there is no embedded cluster in {cluster.base_dir} (configuration: "
            f"{settings.source or 'defaults'}); set database.url to the server to work on, "
            "or run `powrops db start` to create the embedded one"
        )
    url = cluster.url(driver="postgresql")
    return Target(_as_role(url, settings.database.role), embedded=True)


def reachable_target(settings: Settings) -> Target:
    """:func:`target`, or DatabaseError when it is the embedded cluster and that is stopped
    (a monitor reports the outage; only ``powrops db start`` starts it)."""
    where = target(settings)
    if where.embedded:
        cluster = embedded_cluster(settings)
        if not cluster.is_running():
            raise DatabaseError(
                f"cannot connect to {where.display}: the embedded cluster in "
                f"{cluster.base_dir} is stopped; {START_HINT}"
            )
    return where


def _as_role(url: str, role: str | None) -> str:
    """``url`` with ``role`` as its user and no password (libpq finds the role's password in
    ~/.pgpass, PGPASSFILE or PGPASSWORD); ``url`` itself when no role is asked for."""
    if not role:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{quote(role, safe='')}@{host}{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@dataclass(frozen=True)
class Identity:
    """Which server a run acts on, shown at the top of every report and runbook."""

    host: str
    port: int | None
    database: str
    server_version: str | None
    system_identifier: str | None
    embedded: bool
    # The configured server's name (``default`` without ``[servers.*]``), and whether the
    # configuration names several: then a confirmation asks for the server's name (gate).
    server: str = "default"
    several_servers: bool = False

    def describe(self) -> str:
        """'powr on 127.0.0.1:5432, PostgreSQL 18.1, system 7451..., embedded'."""
        return describe_target(self.to_dict()) or self.database

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "database": self.database,
            "server_version": self.server_version,
            "system_identifier": self.system_identifier,
            "embedded": self.embedded,
            "server": self.server,
        }


def identity(settings: Settings) -> Identity:
    """The target's identity, read from the server (DatabaseError when it does not answer)."""
    where = target(settings)
    parts = urlsplit(where.libpq_url)
    with connect(settings, autocommit=True) as conn:
        row = conn.execute(
            "SELECT current_setting('server_version'), current_database()"
        ).fetchone()
        assert row is not None
        ident = control.system_identifier(conn)
    return Identity(
        host=parts.hostname or "localhost",
        port=parts.port,
        database=str(row[1]),
        server_version=str(row[0]).split(" ")[0],
        system_identifier=ident,
        embedded=where.embedded,
        server=settings.server,
        several_servers=len(settings.servers) > 1,
    )


def secrets(settings: Settings) -> list[str]:
    """Secrets to keep out of anything rendered: config secrets and the embedded cluster's
    passwords (its superuser's, its job roles')."""

    found = secret_values(settings)
    if settings.database.url is None:
        cluster = embedded_cluster(settings)
        if cluster.password_file.exists():
            found.append(cluster.password)
        passfile = job_passfile(settings)
        found += pgpass.passwords(passfile).values() if passfile else []
    return found


def connect(
    settings: Settings, *, autocommit: bool = False, **kwargs: Any
) -> psycopg.Connection[Any]:
    """A psycopg connection to the target database, or DatabaseError saying why not.

    The one way powrops connects to the database it works on; it only connects."""
    import psycopg

    tgt = reachable_target(settings)
    try:
        return psycopg.connect(
            tgt.libpq_url,
            autocommit=autocommit,
            connect_timeout=settings.database.connect_timeout,
            application_name=settings.database.application_name,
            client_encoding=CLIENT_ENCODING,
            **kwargs,
        )
    except psycopg.OperationalError as exc:
        raise DatabaseError(f"cannot connect to {tgt.display}: {one_line(str(exc))}") from exc


def engine(settings: Settings) -> sqlalchemy.Engine:
    """A SQLAlchemy engine (psycopg 3 driver) for the target database."""
    import sqlalchemy

    tgt = reachable_target(settings)
    return sqlalchemy.create_engine(
        tgt.sqlalchemy_url,
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": settings.database.connect_timeout,
            "application_name": settings.database.application_name,
            "client_encoding": CLIENT_ENCODING,
        },
    )


@contextlib.contextmanager
def snapshot(
    conn: psycopg.Connection[Any], statement_timeout: str = "5min"
) -> Iterator[psycopg.Connection[Any]]:
    """A read-only REPEATABLE READ transaction with a statement timeout.

    Every query inside sees the same snapshot, and a runaway query is cancelled rather than
    holding the database hostage.
    """
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        conn.execute("SELECT set_config('statement_timeout', %s, true)", (statement_timeout,))
        yield conn
