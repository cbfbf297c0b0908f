"""Physical corruption on disk, planted in a cluster of its own, found by `check integrity`.

Each test gets a fresh embedded site (the session cluster is shared and must stay sound):
migrated, seeded with a little demo data, checkpointed; then the server is stopped, bytes in
the middle of one page of an index or table file are overwritten, and the server is started
again, so the next read of that page fails its data checksum.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from backup_site import Site
from powrops.db import embedded_cluster

pytestmark = pytest.mark.pg

INDEX = "idx_workout_sets_workout"
HEAP = "workout_sets"
BLOCK_SIZE = 8192


@pytest.fixture
def site() -> Iterator[Site]:
    site = Site.create()
    try:
        site.seed(users=5, weeks=2, seed=1)
        site.sql("CHECKPOINT")
        yield site
    finally:
        site.destroy()


def _check(site: Site) -> tuple[int, dict[str, Any]]:
    result = site.cli("check", "integrity", "--json")
    assert result.stdout, result.stderr
    outcome: dict[str, Any] = json.loads(result.stdout)
    return result.returncode, outcome["before"]


def _results(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in report["results"]}


def _corrupt(site: Site, relation: str) -> int:
    """Overwrite 64 bytes in the middle of the last page (never the metapage) of ``relation``.

    Returns the block number overwritten.
    """
    cluster = embedded_cluster(site.settings)
    path, pages = site.sql(
        "SELECT pg_relation_filepath(%s::regclass), "
        "pg_relation_size(%s::regclass) / current_setting('block_size')::int",
        (relation, relation),
    )[0]
    assert pages >= 2, f"{relation} has {pages} page(s): too small to corrupt past page 0"
    block = pages - 1
    cluster.stop()
    with open(cluster.data_dir / path, "r+b") as f:
        f.seek(block * BLOCK_SIZE + BLOCK_SIZE // 2)
        f.write(b"\xa5" * 64)
    cluster.start()  # what `powrops db start` does; a check never starts it
    return int(block)


def test_clean_cluster_passes_amcheck(site: Site) -> None:
    code, report = _check(site)
    results = _results(report)
    assert results["amcheck"]["severity"] == "OK", results["amcheck"]
    assert results["amcheck"]["details"]["relations_checked"] > 20
    assert results["checksum_failures"]["severity"] == "OK"
    assert results["data_checksums"]["severity"] == "OK"
    assert not any(name.endswith("_unreadable") for name in results)
    assert code == 0, report["summary"]


def test_corrupt_index_page_is_critical(site: Site) -> None:
    block = _corrupt(site, INDEX)
    code, report = _check(site)
    results = _results(report)
    assert code == 2, report["summary"]
    assert report["status"] == "CRITICAL"
    amcheck = results["amcheck"]
    assert amcheck["severity"] == "CRITICAL"
    assert amcheck["sample_ids"] == [f"public.{INDEX}"]
    assert f"invalid page in block {block}" in amcheck["message"]
    assert results["checksum_failures"]["severity"] == "CRITICAL"
    assert results["checksum_failures"]["count"] >= 1
    # the other checks still ran in the same snapshot and found nothing wrong
    assert results["orphan_workout_sets"]["severity"] == "OK"
    assert results["weight_range"]["severity"] == "OK"
    assert results["audit_trail"]["count"] == 0


def test_corrupt_heap_page_is_critical_not_a_crash(site: Site) -> None:
    block = _corrupt(site, HEAP)
    code, report = _check(site)
    results = _results(report)
    assert code == 2, report["summary"]
    amcheck = results["amcheck"]
    assert amcheck["severity"] == "CRITICAL"
    assert f"public.{HEAP}" in amcheck["sample_ids"]
    assert f"public.{HEAP}: invalid page in block {block}" in amcheck["message"]
    assert results["checksum_failures"]["severity"] == "CRITICAL"
    # the rule and consistency scans of workout_sets hit the page: reported, run not aborted
    for group in ("validation", "consistency"):
        unreadable = results[f"{group}_unreadable"]
        assert unreadable["severity"] == "CRITICAL"
        assert unreadable["details"]["sqlstate"] == "XX001"
    assert results["data_checksums"]["severity"] == "OK"
    assert report["run_id"] is not None  # stored in ops.check_runs
    stored = site.sql("SELECT status FROM ops.check_runs WHERE id = %s", (report["run_id"],))
    assert stored == [("CRITICAL",)]
