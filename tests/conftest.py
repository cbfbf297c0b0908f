"""Shared fixtures: a real PostgreSQL cluster from powrops' own cluster code, per test session."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from powrops.pg.cluster import LocalCluster

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def pg_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A real PostgreSQL (the embedded default's binaries) started for this test session."""
    base = tmp_path_factory.mktemp("cluster")
    os.chmod(base, 0o755)
    cluster = LocalCluster(base / "state")
    cluster.start()
    yield cluster
    cluster.destroy()


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
