"""The cluster's system identifier, read one way (``powrops.pg.control``) by every feature,
for a role that may execute ``pg_control_system()`` and for one that may not."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from cli_helpers import libpq, login_role
from powrops import readiness
from powrops.config import validate
from powrops.db import identity
from powrops.pg.control import system_identifier

pytestmark = pytest.mark.pg


@pytest.fixture
def blind(fresh_db: str) -> Iterator[tuple[str, str]]:
    """The owner's URL of a new database where PUBLIC may not execute pg_control_system(),
    and the URL of a login role that may connect to it."""
    owner = libpq(fresh_db)
    with login_role(owner, "t_blind") as low:
        with psycopg.connect(owner, autocommit=True) as conn:
            conn.execute("REVOKE EXECUTE ON FUNCTION pg_control_system() FROM PUBLIC")
        yield owner, low


def test_the_identifier_is_the_clusters(blind: tuple[str, str]) -> None:
    owner, _ = blind
    with psycopg.connect(owner, autocommit=True) as conn:
        row = conn.execute("SELECT system_identifier FROM pg_control_system()").fetchone()
        assert row is not None
        assert system_identifier(conn) == str(row[0])


def test_a_role_without_execute_gets_none_and_its_transaction_goes_on(
    blind: tuple[str, str],
) -> None:
    _, low = blind
    with psycopg.connect(low) as conn:  # in a transaction: a refused call would abort it
        assert system_identifier(conn) is None
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_the_targets_identity_says_none_for_such_a_role(blind: tuple[str, str]) -> None:
    owner, low = blind
    assert identity(validate({"database": {"url": low}})).system_identifier is None
    assert identity(validate({"database": {"url": owner}})).system_identifier


def test_the_readiness_facts_say_unknown_for_such_a_role(blind: tuple[str, str]) -> None:
    """The readiness report's header read the identifier in the statement of its other facts:
    a role without EXECUTE stopped the report there."""
    owner, low = blind
    with psycopg.connect(low, autocommit=True) as conn:
        facts = readiness.server_facts(conn)
    assert facts["system_identifier"] is None and facts["database_size"] > 0
    with psycopg.connect(owner, autocommit=True) as conn:
        assert readiness.server_facts(conn)["system_identifier"] == system_identifier(conn)
