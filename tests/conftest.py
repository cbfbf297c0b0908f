"""Shared fixtures: a real PostgreSQL cluster from powrops' own cluster code, per test session."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest

from powrops.config import Settings
from powrops.pg.cluster import LocalCluster
from powrops.pg.embedded import cluster_settings

REPO = Path(__file__).resolve().parents[1]

#: Fixtures that start or use a PostgreSQL server: a test using one is marked ``pg``.
PG_FIXTURES = frozenset({"pg_cluster", "pg_url", "fresh_db", "migrated_db"})


def _checkout_site() -> set[Path]:
    """What is in the checkout's own site: its default state folder and its report archive
    (a clean checkout: no ``.powrops``, ``reports/`` holding ``.gitkeep`` alone)."""
    found = {path for path in REPO.joinpath("reports").iterdir() if path.name != ".gitkeep"}
    return found | {REPO / ".powrops"} if (REPO / ".powrops").exists() else found


_SITE_BEFORE = pytest.StashKey[set[Path]]()


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_SITE_BEFORE] = _checkout_site()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A test that writes into the checkout's site (a command run with no state folder of its
    own) fails the run: it would change what ``make demo`` and the DBA's runbooks read."""
    if hasattr(session.config, "workerinput"):  # pytest-xdist: the controller checks, once
        return
    made = sorted(_checkout_site() - session.config.stash.get(_SITE_BEFORE, set()))
    if made:
        names = ", ".join(str(path.relative_to(REPO)) for path in made)
        writer = session.config.get_terminal_writer()
        writer.line()
        writer.line(
            f"the tests wrote into the checkout's own site: {names} (give the command a state "
            "folder of its own)", red=True)  # fmt: skip
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


#: The marks of the longest tests (a minute and more): their files are run first.
LONG_MARKS = ("slow", "airflow", "browser", "prometheus")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """``pg`` for every test that needs a server: marked so, marked ``pg15``, or using a
    PostgreSQL fixture; ``pytest -m "not pg"`` then runs the fast half alone.

    The files holding a long test come first, in their order, the others after: two workers
    take whole files, and a long one taken last would leave the other worker idle at the end.
    """
    for item in items:
        needs = PG_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if needs or item.get_closest_marker("pg15") is not None:
            item.add_marker(pytest.mark.pg)
    long = {item.path for item in items if any(map(item.get_closest_marker, LONG_MARKS))}
    items.sort(key=lambda item: item.path not in long)


@pytest.fixture(autouse=True)
def _pg_only_when_marked(request: pytest.FixtureRequest) -> None:
    """A test not marked ``pg`` that starts a PostgreSQL server here fails, saying so."""
    if request.node.get_closest_marker("pg") is not None:
        return
    # requested only here, so that a pg test's own monkeypatch keeps its teardown order
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")

    def refuse(*args: Any, **kwargs: Any) -> None:
        pytest.fail("this test starts PostgreSQL: mark it pg", pytrace=False)

    for method in ("init", "start", "launch"):
        monkeypatch.setattr(LocalCluster, method, refuse)


def traversable_dir(prefix: str) -> Path:
    """A new directory that the unprivileged PostgreSQL OS user can enter (pytest's is 0700)."""
    path = Path(tempfile.mkdtemp(prefix=f"powrops-{prefix}-", dir="/tmp"))
    os.chmod(path, 0o755)
    return path


@pytest.fixture
def pg_tmp() -> Iterator[Path]:
    """Like tmp_path, but usable as a cluster's base directory."""
    path = traversable_dir("t")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[LocalCluster]:
    """A real PostgreSQL (the embedded default's binaries) started for this test session."""
    base = traversable_dir("cluster")
    cluster = LocalCluster(base / "state")
    cluster.start(cluster_settings(Settings()))
    yield cluster
    cluster.destroy()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_url(pg_cluster: LocalCluster) -> str:
    """SQLAlchemy URL of the session cluster's `powr` database."""
    return pg_cluster.url()


def _create_database(cluster: LocalCluster) -> str:
    name = "t_" + uuid.uuid4().hex[:10]
    with psycopg.connect(**cluster.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name


def _drop_database(cluster: LocalCluster, name: str) -> None:
    with psycopg.connect(**cluster.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_db(pg_cluster: LocalCluster) -> Iterator[str]:
    """SQLAlchemy URL of a new, empty database, dropped after the test."""
    name = _create_database(pg_cluster)
    yield pg_cluster.url(name)
    _drop_database(pg_cluster, name)


@pytest.fixture(scope="module")
def module_db(pg_cluster: LocalCluster) -> Iterator[str]:
    """SQLAlchemy URL of a new, empty database shared by one test module, dropped after it."""
    name = _create_database(pg_cluster)
    yield pg_cluster.url(name)
    _drop_database(pg_cluster, name)


@pytest.fixture
def migrated_db(fresh_db: str) -> str:
    """A new database migrated to the newest schema revision."""
    from powrops import migrate

    migrate.upgrade(fresh_db, "head")
    return fresh_db


@pytest.fixture(scope="session")
def s3_server() -> Iterator[Any]:
    """moto_server, an S3 API emulator standing in for AWS S3 / GCS, as a real HTTP process."""
    from s3server import S3Server

    server = S3Server.start()
    yield server
    server.close()


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP receiver on 127.0.0.1: its base URL and every message posted to it.
    A path under /broken answers 500, anything else 204."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(500 if self.path.startswith("/broken") else 204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", received
    server.shutdown()
    server.server_close()
