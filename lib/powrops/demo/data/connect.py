"""Where demo data loads: a psycopg connection for any kind of target."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeAlias

from powrops.errors import SeedError
from powrops.pg.cluster import CLIENT_ENCODING

if TYPE_CHECKING:
    import psycopg
    import sqlalchemy

Target: TypeAlias = (
    "psycopg.Connection[Any] | sqlalchemy.Engine | sqlalchemy.Connection | sqlalchemy.URL | str"
)
"""Where to load: a psycopg connection, a SQLAlchemy Engine or Connection, or a database URL
(``postgresql://`` or ``postgresql+psycopg://``)."""


@contextlib.contextmanager
def connect(target: Target) -> Iterator[psycopg.Connection[Any]]:
    """A psycopg connection for any kind of target; connections opened here are closed here."""
    import psycopg
    import sqlalchemy

    if isinstance(target, psycopg.Connection):
        yield target
    elif isinstance(target, sqlalchemy.Connection):
        yield _driver_connection(target.connection.driver_connection)
    elif isinstance(target, sqlalchemy.Engine):
        try:
            raw = target.raw_connection()
        except sqlalchemy.exc.DBAPIError as exc:
            raise SeedError(f"cannot connect to {target.url!r}: {exc.orig}") from exc
        try:
            conn = _driver_connection(raw.driver_connection)
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                conn.rollback()
            yield conn
        finally:
            raw.close()
    else:
        url = sqlalchemy.make_url(target).set(drivername="postgresql")
        try:
            conn = psycopg.connect(
                url.render_as_string(hide_password=False), client_encoding=CLIENT_ENCODING
            )
        except psycopg.OperationalError as exc:
            raise SeedError(f"cannot connect to {url!r}: {exc}") from exc
        with conn:
            yield conn


def _driver_connection(conn: Any) -> psycopg.Connection[Any]:
    import psycopg

    if not isinstance(conn, psycopg.Connection):
        raise SeedError("demo data loads through psycopg 3: use a postgresql+psycopg:// URL")
    return conn
