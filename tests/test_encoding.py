"""A SQL_ASCII database served end to end: every connection asks for UTF-8 text.

On such a database psycopg used to return bytes ("wal_level is b'replica'") and tracebacks in
migrate and alerts. Here a database created with ENCODING 'SQL_ASCII' is migrated, seeded,
backed up, checked, alerted on and reported on through the real command line.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from backup_site import Site

pytestmark = [pytest.mark.pg, pytest.mark.slow]


@pytest.fixture(scope="module")
def ascii_site() -> Iterator[Site]:
    site = Site.create()
    try:
        site.sql(
            "CREATE DATABASE powr_ascii ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' "
            "TEMPLATE template0"
        )
        from powrops.db import embedded_cluster

        url = embedded_cluster(site.settings).url("powr_ascii", driver="postgresql")
        site.write_config(database={"url": url})
        yield site
    finally:
        site.destroy()


def _ran(site: Site, *args: str, codes: tuple[int, ...] = (0,)) -> str:
    run = site.cli(*args)
    shown = f"powrops {' '.join(args)} -> {run.returncode}\n{run.stdout}\n{run.stderr}"
    assert run.returncode in codes, shown
    assert "Traceback" not in run.stderr and "b'" not in run.stdout + run.stderr, shown
    return run.stdout


def test_the_database_really_is_sql_ascii(ascii_site: Site) -> None:
    rows = ascii_site.sql("SELECT pg_encoding_to_char(encoding) FROM pg_database "
                          "WHERE datname = 'powr_ascii'")  # fmt: skip
    assert rows == [("SQL_ASCII",)]


def test_migrate_seed_backup_check_alert_and_report(ascii_site: Site) -> None:
    assert "-> " in _ran(ascii_site, "migrate", "latest")
    _ran(ascii_site, "seed", "--users", "10", "--weeks", "2", "--defects")
    assert "OK" in _ran(ascii_site, "backup", "full")
    _ran(ascii_site, "alerts", codes=(0, 1, 2))
    _ran(ascii_site, "check", "integrity", codes=(0, 1, 2))
    _ran(ascii_site, "report", "run", "readiness_report", codes=(0, 1, 2))
