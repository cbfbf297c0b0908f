"""Helpers shared by the tests that run the ``powrops`` command line in a subprocess."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import psycopg

from powrops.config import Settings, to_toml


def libpq(url: str) -> str:
    """The SQLAlchemy URL the fixtures hand out, as the libpq URL psycopg and powrops take."""
    return url.replace("postgresql+psycopg://", "postgresql://")


def run_cli(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m powrops.cli *args``, with no POWROPS* variable inherited, only ``env``'s."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("POWROPS")}
    return subprocess.run(
        [sys.executable, "-m", "powrops.cli", *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=timeout,
        check=False,
    )


def write_config(path: Path, settings: Settings) -> Path:
    """A powrops.toml at ``path`` with the settings' database URL and state directory."""
    assert settings.database.url is not None
    data = {
        "database": {"url": settings.database.url.get_secret_value()},
        "state": {"dir": settings.state.dir},
    }
    path.write_text(to_toml(data))
    return path


@contextlib.contextmanager
def login_role(owner: str, prefix: str) -> Iterator[str]:
    """A new LOGIN role (``prefix`` and a random suffix) that may connect to the database of
    ``owner`` (a libpq URL) and do nothing more, as a URL with its password; dropped after."""
    role = f"{prefix}_{uuid.uuid4().hex[:8]}"
    parts = psycopg.conninfo.conninfo_to_dict(owner)
    with psycopg.connect(owner) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'few'")
        conn.execute(f'GRANT CONNECT ON DATABASE "{parts["dbname"]}" TO {role}')
    try:
        yield f"postgresql://{role}:few@{parts['host']}:{parts['port']}/{parts['dbname']}"
    finally:
        with psycopg.connect(owner, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")
