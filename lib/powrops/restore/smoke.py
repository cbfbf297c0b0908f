"""The verification's test restore: a backup (the newest by default) into a scratch
directory, smoke queries on the restored server, and teardown whatever happened."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from psycopg import sql

from powrops.errors import ClusterError, ConfigError, Interrupted, ParameterError, PowropsError
from powrops.format import Echo
from powrops.pg.access import check_reachable
from powrops.pg.cluster import LocalCluster, ensure_os_user, postmaster_pid
from powrops.restore.prepare import restore
from powrops.restore.recovery import RestoredCluster, base_dir_for
from powrops.restore.target import LATEST, RecoveryTarget
from powrops.tables import OPS_SCHEMA, PUBLIC_TABLES, VERSION_TABLE

if TYPE_CHECKING:
    from powrops.config import Settings

DEFAULT_SMOKE: tuple[str, ...] = ("SELECT 1",)


def test_restore(
    settings: Settings,
    *,
    label: str | None = None,
    smoke: Sequence[str] = DEFAULT_SMOKE,
    target: RecoveryTarget = LATEST,
    timeout: float = 600,
    echo: Echo | None = None,
) -> dict[str, Any]:
    """Restore a backup (the newest by default) into a scratch directory, run smoke queries,
    and tear the scratch cluster down whatever happened.

    The queries are ``smoke``, then ``count(*)`` of each POWR table the restored database has,
    then the alembic revision from ``ops.alembic_version`` when it exists. ``ok`` is true when
    the restore succeeded and every query returned.
    """
    scratch = scratch_cluster_dir(settings)
    result: dict[str, Any] = {"label": label, "chain": [], "ok": False, "queries": [],
                              "timings": {}}  # fmt: skip
    restored: RestoredCluster | None = None
    try:
        restored = restore(
            settings, to=scratch / "pgdata", label=label, target=target, timeout=timeout,
            echo=echo,
        )  # fmt: skip
        result.update(label=restored.label, chain=list(restored.chain))
        result["queries"] = run_smoke(restored, smoke)
        result["ok"] = all("error" not in q for q in result["queries"])
        result["recovered_lsn"] = restored.recovered_lsn
        result["timeline"] = restored.timeline
    except ParameterError:
        raise
    except KeyboardInterrupt as exc:  # whatever the restore kept, the scratch goes (finally)
        interrupted = Interrupted.of(exc)
        interrupted.left[:] = [f"the test restore was stopped and {scratch} removed"]
        raise interrupted from None
    except PowropsError as exc:
        result["error"] = str(exc)
    finally:
        if restored is not None:
            result["timings"] = dict(restored.timings)
        _teardown(restored, scratch, settings)
    return result


test_restore.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def scratch_cluster_dir(
    settings: Settings, folder: str = "scratch", prefix: str = "powrops-test-restore-"
) -> Path:
    """A new directory for a scratch cluster, which the OS user can enter: in ``<state
    dir>/<folder>``, else (a 0700 state directory root owns, as on a database host) in the
    temp dir. The test restore's and the drill's."""
    user = ensure_os_user(settings.postgres.os_user)
    for parent in (settings.state_dir / folder, Path(tempfile.gettempdir())):
        try:
            if not parent.exists():  # the state directory made as every writer makes it
                settings.make_state_dir()
                parent.mkdir(mode=0o755)
            check_reachable(parent / "x", user)
        except (OSError, ClusterError, ConfigError):
            continue
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        os.chmod(path, 0o755)
        return path
    raise ClusterError(
        f"no scratch directory the PostgreSQL OS user {user.name!r} can enter: neither "
        f"{settings.state_dir / folder} nor {tempfile.gettempdir()}"
    )


def _teardown(restored: RestoredCluster | None, scratch: Path, settings: Settings) -> None:
    """Stop the scratch server and remove the scratch directory, also when an interrupt
    (Ctrl-C, SIGTERM) arrives meanwhile: the teardown finishes first, then the interrupt is
    raised, saying what it removed (a teardown cut short would leave the restored copy, a
    full data directory, behind)."""
    pending: Interrupted | None = None
    if restored is not None:
        try:
            restored.destroy()
        except KeyboardInterrupt as exc:
            pending = Interrupted.of(exc)
    for _ in range(2):  # once more when a second interrupt cuts the first removal short
        try:
            _destroy_scratch(scratch, settings)
            break
        except KeyboardInterrupt as exc:
            pending = pending or Interrupted.of(exc)
    if pending is not None:
        raise pending.leaving(f"the test restore was stopped and {scratch} removed")


def _destroy_scratch(scratch: Path, settings: Settings) -> None:

    data = scratch / "pgdata"
    if postmaster_pid(data) is not None:  # a failure left a server behind: stop it first
        LocalCluster(base_dir_for(data), os_user=settings.postgres.os_user, data_dir=data).destroy()
    shutil.rmtree(scratch, ignore_errors=True)


COUNT_ROWS = sql.SQL("SELECT count(*) FROM public.{table}")
VERSION = sql.SQL("SELECT version_num FROM {schema}.{table}")
"""The alembic revision the restored database is at."""


def smoke_queries(conn: Any, extra: Sequence[str]) -> list[str]:
    """``extra``, then a row count per POWR table present, then the alembic revision."""

    queries = list(extra)
    for name in PUBLIC_TABLES:
        qualified = sql.Identifier("public", name).as_string(conn)
        if conn.execute("SELECT to_regclass(%s)", (qualified,)).fetchone()[0]:
            queries.append(COUNT_ROWS.format(table=sql.Identifier(name)).as_string(conn))
    version = f"{OPS_SCHEMA}.{VERSION_TABLE}"
    if conn.execute("SELECT to_regclass(%s)", (version,)).fetchone()[0]:
        # unquoted, as alembic names it (and as the report shows it): both are plain lowercase
        query = VERSION.format(schema=sql.SQL(OPS_SCHEMA), table=sql.SQL(VERSION_TABLE))
        queries.append(query.as_string(conn))
    return queries


def run_smoke(restored: RestoredCluster, extra: Sequence[str]) -> list[dict[str, Any]]:
    """Run the smoke queries on a restored, promoted cluster; each with its rows or error."""
    import psycopg

    results: list[dict[str, Any]] = []
    with psycopg.connect(
        **restored.conninfo(restored.database), autocommit=True, connect_timeout=10
    ) as conn:
        conn.execute("SET statement_timeout = '60s'")
        for sql in smoke_queries(conn, extra):
            try:
                rows = conn.execute(sql).fetchall()
            except psycopg.Error as exc:
                results.append({"sql": sql, "error": str(exc).strip()})
                continue
            results.append({"sql": sql, "rows": [[_plain(v) for v in row] for row in rows]})
    return results


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)
