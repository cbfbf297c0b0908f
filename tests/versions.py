"""Versions and paths the tests share."""

from __future__ import annotations

from pathlib import Path

#: Debian's PostgreSQL 15 programs (package postgresql-15, installed by make test).
DEBIAN_15 = Path("/usr/lib/postgresql/15/bin")
