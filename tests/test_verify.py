"""Backup verification against real repositories: a cluster archiving WAL through powrops, real
full and incremental backups copied to a file:// secondary, then one fault planted per test in a
copy of those repositories (or, for failed runs, caused for real) and reported precisely."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import zstandard

from backup_site import Site
from conftest import traversable_dir
from powrops.backup import reconstruct
from powrops.backup.model import BackupRecord
from powrops.backup.wal.positions import format_lsn, parse_lsn, parse_segment
from powrops.config import merge, to_toml
from powrops.errors import LockError
from powrops.findings import Finding, Severity
from powrops.pg.binaries import find_binaries
from powrops.storage.registry import open_repository
from powrops.verify import runner, verify
from powrops.verify.checksums import ObjectCheck
from powrops.verify.continuity import (
    HistoryEntry,
    Range,
    WalArchive,
    parse_history,
    recovery_path,
    walk,
)
from powrops.verify.recoverability import build_archive
from powrops.verify.report import VerificationReport

pytestmark = pytest.mark.pg

SEGMENT = 16 * 1024 * 1024


@dataclass
class Base:
    """The real site: a full, WAL, an incremental, more WAL; all copied to the secondary."""

    site: Site
    primary: Path
    secondary: Path
    full: str
    incremental: str


def _write(site: Site, rows: int) -> None:
    site.sql(
        "INSERT INTO lifts (kg, note) SELECT g * 2.5, md5(g::text) FROM generate_series(1, %s) g",
        (rows,),
    )


@pytest.fixture(scope="module")
def base() -> Iterator[Base]:
    where = traversable_dir("verify")
    secondary = where / "secondary"
    site = Site.create(
        backup={"storage": {"secondary": {"kind": "file", "url": secondary.as_uri()}}}
    )
    try:
        site.sql("CREATE TABLE lifts (id serial PRIMARY KEY, kg numeric, note text)")
        _write(site, 20_000)
        full = site.cli("backup", "full")
        assert full.returncode == 0, full.stdout + full.stderr
        for _ in range(3):
            _write(site, 2_000)
            site.switch_wal()
        inc = site.cli("backup", "incremental")
        assert inc.returncode == 0, inc.stdout + inc.stderr
        for _ in range(3):
            _write(site, 2_000)
            site.switch_wal()
        labels = [r["label"] for r in site.backups()]
        assert len(labels) == 2 and labels[0].endswith("F") and labels[1].endswith("I")
        yield Base(site, site.root / "state" / "backups", secondary, labels[0], labels[1])
    finally:
        site.destroy()
        shutil.rmtree(where, ignore_errors=True)


@pytest.fixture
def clone(base: Base) -> Iterator[Callable[[], Base]]:
    """Copies of the base repositories, with a config naming them (same database), without
    the verification state: the first ``verify`` of a copy reads everything."""
    made: list[Path] = []

    def make() -> Base:
        root = traversable_dir("verify-clone")
        made.append(root)
        primary, secondary = root / "primary", root / "secondary"
        shutil.copytree(base.primary, primary)  # copy2 keeps mtimes: the archive times
        shutil.copytree(base.secondary, secondary)
        for copy in (primary, secondary):  # a first verification of each copy reads it all
            (copy / "verification" / "state.json").unlink(missing_ok=True)
        data = merge(
            base.site.data,
            {
                "backup": {
                    "storage": {
                        "primary": {"kind": "file", "url": primary.as_uri()},
                        "secondary": {"kind": "file", "url": secondary.as_uri()},
                    }
                }
            },
        )
        config = root / "powrops.toml"
        config.write_text(to_toml(data))
        # A view of the same cluster whose config names the copies. Never destroy() it.
        view = Site(root, config, data)
        return Base(view, primary, secondary, base.full, base.incremental)

    yield make
    for root in made:
        shutil.rmtree(root, ignore_errors=True)


def run_verify(site: Site, *args: str) -> tuple[int, dict[str, Any]]:
    result = site.cli("verify", *args, "--json")
    assert result.returncode in (0, 1, 2, 3), result.stderr
    try:
        return result.returncode, json.loads(result.stdout)
    except ValueError:
        raise AssertionError(result.stdout + result.stderr) from None


def problems(report: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    return sorted(
        (f["severity"], f["check"], f["object"])
        for f in report["findings"]
        if f["severity"] != "OK"
    )


def finding(report: dict[str, Any], check: str, obj: str | None = None) -> dict[str, Any]:
    found = [
        f for f in report["findings"] if f["check"] == check and (obj is None or f["object"] == obj)
    ]
    assert len(found) == 1, (check, obj, found)
    return found[0]


def row(report: dict[str, Any], label: str) -> dict[str, Any]:
    return next(r for r in report["backups"] if r["label"] == label)


def wal_path(repo: Path, name: str) -> Path:
    return repo / "wal" / name[:16] / f"{name}.zst"


def segments(repo: Path) -> list[str]:
    return sorted(p.name.removesuffix(".zst") for p in (repo / "wal").rglob("*.zst")
                  if len(p.name) == 28)  # fmt: skip


def record(repo: Path, label: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((repo / "backups" / label / "backup.json").read_text())
    return data


# --- a clean repository --------------------------------------------------------------------


def test_clean_repository_is_ok(base: Base) -> None:
    code, report = run_verify(base.site)
    assert code == 0 and report["status"] == "OK", problems(report)
    assert problems(report) == []
    newest = segments(base.primary)[-1]
    for label, chain, verifybackup in (
        (base.full, [base.full], "not needed: a full backup's files are checked against its "
         "manifest in the stream, and the WAL of its range parsed with pg_waldump"),
        (base.incremental, [base.full, base.incremental], "ok"),  # the newest chain, combined
    ):  # fmt: skip
        r = row(report, label)
        assert (r["checksums"], r["content"], r["secondary"], r["pg_verifybackup"], r["wal"]) == (
            "ok", "ok", "ok", verifybackup, "continuous",
        )  # fmt: skip
        assert r["chain"] == chain and r["severity"] == "OK"
        window = r["window"]
        assert window["start_lsn"] == record(base.primary, label)["stop_lsn"]
        assert window["end_segment"] == newest and window["stopped_by"] is None
        assert window["end_lsn"] == format_lsn((parse_segment(newest).number + 1) * SEGMENT)
        message = finding(report, "recoverability", label)["message"]
        assert f"can recover to any point between {window['start_lsn']}" in message
        content = finding(report, "content", label)
        assert "of its range (segment " in content["message"]
        assert content["message"].endswith("parses with pg_waldump")
        assert content["details"]["wal_segments"] == [record(base.primary, label)["start_wal"]]
    checks = {f["check"] for f in report["findings"]}
    assert checks >= {
        "checksums", "content", "secondary", "pg_verifybackup", "wal_continuity",
        "recoverability",
        "freshness.full", "freshness.incremental", "freshness.wal", "freshness.archiver",
        "failed_backups",
    }  # fmt: skip
    assert report["timelines"][0]["timeline"] == 1 and report["timelines"][0]["gaps"] == []
    assert {f["check"] for f in report["freshness"]} >= {"freshness.full", "freshness.wal"}
    assert report["figures"]["wal_checked"] >= 2 * 6  # the primary's and the secondary's

    text = base.site.cli("verify", "--skip-pg-verifybackup")
    assert text.returncode == 0, text.stdout + text.stderr
    assert text.stdout.splitlines()[0].split() == ["SEVERITY", "CHECK", "OBJECT", "MESSAGE"]
    assert text.stdout.rstrip().splitlines()[-1].startswith("verify OK: 2 backups")
    assert "pg_verifybackup: backup" not in text.stderr  # skipped on request


# --- planted faults ------------------------------------------------------------------------


def test_flipped_byte_in_a_stored_backup_file(clone: Callable[[], Base]) -> None:
    c = clone()
    data = c.primary / "backups" / c.full / "base.tar.zst"
    content = bytearray(data.read_bytes())
    content[len(content) // 2] ^= 0x01
    data.write_bytes(bytes(content))
    code, report = run_verify(c.site)
    assert code == 2 and report["status"] == "CRITICAL"
    assert problems(report) == [("CRITICAL", "checksums", f"{c.full}/base.tar.zst")]
    message = finding(report, "checksums", f"{c.full}/base.tar.zst")["message"]
    assert message.startswith(f"backup {c.full}: base.tar.zst in file://")
    assert "does not match its recorded SHA-256" in message
    assert row(report, c.full)["checksums"] == "failed"
    assert row(report, c.incremental)["checksums"] == "ok"
    for label in (c.full, c.incremental):  # both need the damaged full: not reconstructed
        assert row(report, label)["pg_verifybackup"] == f"skipped: checksum failure in {c.full}"
        assert row(report, label)["secondary"] == "ok"


def test_a_frame_damaged_before_its_digest_was_taken_is_named(clone: Callable[[], Base]) -> None:
    """A byte flipped in the middle of the data object, its record rewritten to match (damage
    before the SHA-256 was taken): the first read decodes the frame, which does not match its
    zstd checksum, and verify says so in one finding naming the object; exit 2, no traceback."""
    c = clone()
    data = c.primary / "backups" / c.full / "base.tar.zst"
    damaged = bytearray(data.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    data.write_bytes(bytes(damaged))
    path = c.primary / "backups" / c.full / "backup.json"
    rewritten = json.loads(path.read_text())
    for f in rewritten["files"]:
        if f["name"] == "base.tar.zst":
            assert f["frames"] is not None and len(f["frames"]["sizes"]) > 2
            f["sha256"] = hashlib.sha256(damaged).hexdigest()
    path.write_text(json.dumps(rewritten))
    result = c.site.cli("verify", c.full, "--skip-pg-verifybackup")
    assert result.returncode == 2 and "Traceback" not in result.stderr + result.stdout
    line = next(x for x in result.stdout.splitlines() if f"{c.full}/base.tar.zst" in x)
    assert line.split()[:2] == ["CRITICAL", "checksums"], line
    code, report = run_verify(c.site, c.full, "--skip-pg-verifybackup")
    assert code == 2 and row(report, c.full)["checksums"] == "failed"
    critical = [p for p in problems(report) if p[0] == "CRITICAL"]
    assert critical == [("CRITICAL", "checksums", f"{c.full}/base.tar.zst")]  # the secondary's
    message = finding(report, "checksums", f"{c.full}/base.tar.zst")["message"]  # copy differs
    assert message.startswith(f"backup {c.full}: base.tar.zst cannot be decompressed and "
                              "unpacked: its frame at byte "), message  # fmt: skip
    assert " does not decode (" in message, message


def test_the_frame_index_matches_the_stored_object(base: Base) -> None:
    """A new backup's data object is a sequence of zstd frames, each where its record says,
    each holding the recorded piece of the tar stream (every piece the same size but the
    last); together they are one zstd stream, which ``zstd -dc`` reads as a whole."""
    for label in (base.full, base.incremental):
        stored = (base.primary / "backups" / label / "base.tar.zst").read_bytes()
        [data] = [f for f in BackupRecord.from_dict(record(base.primary, label)).files
                  if f.name == "base.tar.zst"]  # fmt: skip
        assert data.frames is not None and data.stored_size == len(stored)
        spans = data.frames.spans()
        assert len(spans) > 2 and spans[0].stored_offset == 0
        assert spans[-1].stored_offset + spans[-1].stored_size == len(stored)
        assert all(s.raw_size == data.frames.frame_size for s in spans[:-1])
        assert sum(s.raw_size for s in spans) == data.frames.raw_size == data.size
        pieces = []
        for span in spans:
            frame = stored[span.stored_offset : span.stored_offset + span.stored_size]
            assert zstandard.get_frame_parameters(frame).content_size == span.raw_size
            pieces.append(zstandard.ZstdDecompressor().decompress(frame))
            assert len(pieces[-1]) == span.raw_size
        whole = b"".join(pieces)
        assert whole == _decompressed(stored) and whole.endswith(bytes(1024))  # a tar's end
        if shutil.which("zstd"):
            unzstd = subprocess.run(["zstd", "-dc"], input=stored, capture_output=True, check=True)
            assert unzstd.stdout == whole


def _restored_and_verified(repo: Path, label: str, where: Path) -> str:
    """Backup ``label`` unpacked as a restore unpacks it, then ``pg_verifybackup`` on the data
    directory (every file against the manifest, the WAL in its pg_wal/ parsed); its report."""
    dest = reconstruct.extract(open_repository(repo.as_uri()), label, where / label)
    return reconstruct.verify_directory(find_binaries(), dest)


def test_a_backup_written_as_one_stream_verifies_and_restores(
    clone: Callable[[], Base], tmp_path: Path
) -> None:
    """A backup written before frames were recorded (one zstd stream, no frames in its
    record) is still read whole, checked against its manifest and unpacked by a restore; so
    is one written in frames."""
    c = clone()
    assert "successfully verified" in _restored_and_verified(c.primary, c.full, tmp_path / "f")
    stored = c.primary / "backups" / c.full / "base.tar.zst"
    _rewrite_as_one_stream(c, c.full, _decompressed(stored.read_bytes()))
    assert "frames" not in next(f for f in record(c.primary, c.full)["files"]
                                if f["name"] == "base.tar.zst")  # fmt: skip
    code, report = run_verify(c.site, c.full, "--skip-pg-verifybackup")
    assert code == 0, problems(report)
    assert row(report, c.full)["content"] == "ok"
    assert finding(report, "content", c.full)["message"].endswith("parses with pg_waldump")
    assert "successfully verified" in _restored_and_verified(c.primary, c.full, tmp_path / "o")
    stored.write_bytes(stored.read_bytes()[:-100])  # a single stream cut short: still found
    code, report = run_verify(c.site, c.full, "--content", "--skip-pg-verifybackup")
    assert code == 2 and row(report, c.full)["checksums"] == "failed"


def test_missing_wal_segment_in_the_middle(clone: Callable[[], Base]) -> None:
    c = clone()
    full = record(c.primary, c.full)
    gap = parse_segment(full["stop_wal"]).next().name  # between the full and the incremental
    before = parse_segment(full["stop_wal"]).name
    assert gap < record(c.primary, c.incremental)["start_wal"]
    wal_path(c.primary, gap).unlink()
    code, report = run_verify(c.site, "--skip-pg-verifybackup")
    assert code == 2
    assert problems(report) == [("CRITICAL", "wal_continuity", gap)]
    message = finding(report, "wal_continuity", gap)["message"]
    assert finding(report, "wal_continuity", gap)["advice"] == (
        f"the secondary still holds the missing WAL: copy wal/{gap[:16]}/{gap}.zst from the "
        "secondary into the primary to close the gap"
    )
    end = format_lsn(parse_lsn(full["stop_lsn"]) // SEGMENT * SEGMENT + SEGMENT)
    assert f"WAL gap on timeline 1: {gap} missing (1 segment)" in message
    assert f"backup {c.full} can recover only to {end} (end of {before}" in message
    assert c.incremental not in message.split("missing")[1]  # it starts after the gap
    window = row(report, c.full)["window"]
    assert (window["end_segment"], window["end_lsn"], window["stopped_by"]) == (before, end, gap)
    assert row(report, c.full)["wal"] == f"gap at {gap}"
    newest = segments(c.primary)[-1]
    assert row(report, c.incremental)["window"]["end_segment"] == newest
    assert report["timelines"][0]["gaps"] == [
        {"timeline": 1, "first": gap, "last": gap, "count": 1, "damaged": []}
    ]


def test_truncated_wal_segment(clone: Callable[[], Base]) -> None:
    c = clone()
    name = segments(c.primary)[-2]  # after the incremental's start: both backups cross it
    assert name > record(c.primary, c.incremental)["stop_wal"]
    path = wal_path(c.primary, name)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    code, report = run_verify(c.site, "--skip-pg-verifybackup")
    assert code == 2
    assert problems(report) == [
        ("CRITICAL", "checksums", name),
        ("CRITICAL", "wal_continuity", name),
    ]
    assert f"archived WAL {name} in file://" in finding(report, "checksums", name)["message"]
    assert "is truncated" in finding(report, "checksums", name)["message"]
    gap = finding(report, "wal_continuity", name)
    assert f"{name} missing or damaged" in gap["message"]
    assert gap["details"]["damaged"] == [name]
    previous = parse_segment(name).number - 1
    for label in (c.full, c.incremental):
        assert row(report, label)["window"]["end_lsn"] == format_lsn((previous + 1) * SEGMENT)


def test_file_missing_only_in_the_secondary(clone: Callable[[], Base]) -> None:
    c = clone()
    (c.secondary / "backups" / c.incremental / "base.tar.zst").unlink()
    code, report = run_verify(c.site, "--skip-pg-verifybackup")
    assert code == 1 and report["status"] == "WARNING"
    assert problems(report) == [("WARNING", "secondary", f"{c.incremental}/base.tar.zst")]
    message = finding(report, "secondary", f"{c.incremental}/base.tar.zst")["message"]
    assert f"backup {c.incremental}: base.tar.zst is missing from file://" in message
    assert "the primary copy is fine" in message
    assert row(report, c.incremental)["secondary"] == "damaged"
    assert row(report, c.incremental)["checksums"] == "ok"


def test_wal_damaged_only_in_the_secondary(clone: Callable[[], Base]) -> None:
    c = clone()
    name = segments(c.secondary)[1]
    path = wal_path(c.secondary, name)
    content = bytearray(path.read_bytes())
    content[-6] ^= 0xFF  # inside the compressed data or its frame checksum
    path.write_bytes(bytes(content))
    code, report = run_verify(c.site, "--skip-pg-verifybackup")
    assert code == 1
    assert problems(report) == [("WARNING", "secondary", name)]
    message = finding(report, "secondary", name)["message"]
    assert "the primary copy is fine" in message
    assert "does not match the primary's copy" in message  # its SHA-256: nothing decompressed


def test_full_older_than_the_schedule(clone: Callable[[], Base]) -> None:
    c = clone()
    path = c.primary / "backups" / c.full / "backup.json"
    data = json.loads(path.read_text())
    when = datetime.now(UTC) - timedelta(hours=30)
    data.update(start_time=(when - timedelta(seconds=5)).isoformat(), stop_time=when.isoformat())
    path.write_text(json.dumps(data))
    code, report = run_verify(c.site, "--skip-pg-verifybackup")
    assert code == 1
    assert problems(report) == [("WARNING", "freshness.full", c.full)]
    message = finding(report, "freshness.full", c.full)["message"]
    assert f"newest full backup {c.full} finished 30 h" in message
    assert "older than the schedule: full daily" in message

    later = verify(c.site.settings, now=datetime.now(UTC) + timedelta(hours=20),
                   pg_verifybackup=False)  # fmt: skip
    full = [f for f in later.findings if f.check == "freshness.full"]
    assert [(f.severity, f.object) for f in full] == [(Severity.CRITICAL, c.full)]
    assert "more than twice the schedule" in full[0].message
    inc = [f for f in later.findings if f.check == "freshness.incremental"]
    assert [(f.severity, f.object) for f in inc] == [(Severity.WARNING, c.incremental)]


def test_incomplete_backup_and_broken_chain(clone: Callable[[], Base]) -> None:
    c = clone()
    (c.primary / "backups" / c.full / "backup.json").unlink()  # as if the run had been killed
    code, report = run_verify(c.site, "--skip-pg-verifybackup")
    assert code == 2
    assert problems(report) == sorted(
        [
            ("CRITICAL", "backups", c.incremental),
            ("CRITICAL", "freshness.full", None),
            ("WARNING", "backups", c.full),
        ]
    )
    broken = finding(report, "backups", c.incremental)["message"]
    assert (
        broken == f"backup {c.incremental} is not restorable: chain broken: parent {c.full} missing"
    )
    assert f"incomplete backup {c.full}" in finding(report, "backups", c.full)["message"]


def test_content_check_catches_what_checksums_cannot(clone: Callable[[], Base]) -> None:
    """A backup whose bytes match its record but whose content is wrong (PG_VERSION altered):
    the manifest check of the stream finds it, and so does pg_verifybackup. Its content had
    been checked intact before: bytes replaced behind a rewritten record are checked again."""
    c = clone()
    assert run_verify(c.site, c.full, "--skip-pg-verifybackup")[0] == 0
    stored = c.primary / "backups" / c.full / "base.tar.zst"
    raw = bytearray(_decompressed(stored.read_bytes()))
    with tarfile.open(fileobj=io.BytesIO(bytes(raw)), mode="r:") as archive:
        member = next(m for m in archive.getmembers() if m.name in ("PG_VERSION", "./PG_VERSION"))
        raw[member.offset_data] ^= 0x01
    _rewrite_as_one_stream(c, c.full, bytes(raw))  # both copies agree, the record matches
    code, report = run_verify(c.site, c.full)
    assert code == 2
    assert problems(report) == [("CRITICAL", "content", c.full)]
    message = finding(report, "content", c.full)["message"]
    assert message.startswith(f"backup {c.full} does not match its backup_manifest: PG_VERSION "
                              "does not match its CRC32C in the manifest")  # fmt: skip
    assert row(report, c.full)["content"] == "failed"
    # the incremental built on it: its chain is not combined over a member that failed
    code, report = run_verify(c.site, c.incremental)
    assert code == 2 and problems(report) == [("CRITICAL", "content", c.full)]
    assert [r["label"] for r in report["backups"]] == [c.full, c.incremental]
    assert row(report, c.incremental)["pg_verifybackup"] == f"skipped: content failure in {c.full}"


def test_content_is_checked_once_for_the_same_stored_bytes(clone: Callable[[], Base]) -> None:
    """The first read of a backup decompresses it and checks it against its manifest; later
    reads check that the stored bytes are still those (their SHA-256), as pgBackRest's verify
    checks its repository checksums; ``--content`` decompresses and checks them again."""
    c = clone()
    code, first = run_verify(c.site, c.full, "--skip-pg-verifybackup")
    assert code == 0 and row(first, c.full)["content"] == "ok"
    code, again = run_verify(c.site, c.full, "--skip-pg-verifybackup")
    assert code == 0 and row(again, c.full)["content"].startswith("ok at ")
    assert row(again, c.full)["checksums"] == "ok"
    assert again["figures"]["bytes_read"] == first["figures"]["bytes_read"]  # every byte read
    assert _modules_loaded_by_verify(c.site, c.full, ("psycopg", "sqlalchemy")) == []
    code, forced = run_verify(c.site, c.full, "--content", "--skip-pg-verifybackup")
    assert code == 0 and row(forced, c.full)["content"] == "ok"
    stored = c.primary / "backups" / c.full / "base.tar.zst"
    damaged = bytearray(stored.read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    stored.write_bytes(bytes(damaged))  # the bytes the content was checked on are gone
    code, after = run_verify(c.site, c.full, "--skip-pg-verifybackup")
    assert code == 2 and ("CRITICAL", "checksums", f"{c.full}/base.tar.zst") in problems(after)


def _modules_loaded_by_verify(site: Site, label: str, heavy: tuple[str, ...]) -> list[str]:
    """Which of ``heavy`` a whole ``powrops verify LABEL`` loaded: reading stored bytes back
    needs no database driver, which would be a third of the command's start."""
    probe = (
        f"import sys; sys.argv = ['powrops', 'verify', {label!r}, '--skip-pg-verifybackup']\n"
        "from powrops.cli.main import main\n"
        "code = main()\n"
        f"print(code, *[m for m in {heavy!r} if m in sys.modules])\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWROPS")}
    out = subprocess.run(
        [sys.executable, "-c", probe],
        env={**env, "POWROPS_CONFIG": str(site.config)},
        capture_output=True,
        text=True,
        check=True,
    )
    code, *loaded = out.stdout.splitlines()[-1].split()  # after the command's own output
    assert code == "0", out.stdout + out.stderr
    return loaded


def _decompressed(stored: bytes) -> bytes:
    """A backup's data object decompressed, all its frames."""
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(stored), read_across_frames=True)
    return reader.read()


def _rewrite_as_one_stream(c: Base, label: str, raw: bytes, level: int = 1) -> bytes:
    """Backup ``label``'s data object replaced by ``raw`` in one zstd frame, in both
    repositories, as backups were written before their frames were recorded, and its record
    rewritten to match (no frames). The new stored bytes."""
    new = zstandard.ZstdCompressor(level=level, write_checksum=True).compress(raw)
    for repo in (c.primary, c.secondary):
        (repo / "backups" / label / "base.tar.zst").write_bytes(new)
    path = c.primary / "backups" / label / "backup.json"
    data = json.loads(path.read_text())
    for f in data["files"]:
        if f["name"] == "base.tar.zst":
            f.update(sha256=hashlib.sha256(new).hexdigest(), stored_size=len(new), size=len(raw))
            f.pop("frames", None)
    path.write_text(json.dumps(data))
    return new


def _recompress(c: Base, label: str) -> str:
    """The stored bytes of backup ``label``'s data object replaced by another zstd frame of the
    same content, in both repositories, and its record rewritten to match: bytes that are not
    the ones a check was made on, yet pass every checksum. Their SHA-256."""
    old = (c.primary / "backups" / label / "base.tar.zst").read_bytes()
    new = _rewrite_as_one_stream(c, label, _decompressed(old), level=9)
    assert new != old
    return hashlib.sha256(new).hexdigest()


def test_a_combined_chain_is_checked_once_for_the_same_stored_bytes(
    clone: Callable[[], Base],
) -> None:
    """`verify INCREMENTAL` combines the chain and runs pg_verifybackup once; a later one whose
    reads find every member's stored bytes unchanged (SHA-256) relies on that check and does
    not combine (here it could not: its scratch folder is gone). ``--content`` combines
    again, and so does a change to a member's stored bytes."""
    c = clone()
    scratch = c.site.root / "scratch"
    scratch.mkdir()
    c.site.write_config(verification={"scratch_dir": str(scratch)})
    code, first = run_verify(c.site, c.incremental)
    assert code == 0 and row(first, c.incremental)["pg_verifybackup"] == "ok", problems(first)
    assert "was successfully verified" in finding(first, "pg_verifybackup")["message"]
    recorded = _state(c.primary)["chains"][c.incremental]
    assert recorded["members"] == [c.full, c.incremental]
    assert recorded["checked_at"] == first["now"]
    for label in (c.full, c.incremental):
        for f in record(c.primary, label)["files"]:
            assert recorded["digests"][f"backups/{label}/{f['name']}"] == f["sha256"]

    scratch.rmdir()  # combining a chain now fails
    code, again = run_verify(c.site, c.incremental)
    assert code == 0, problems(again)
    relied = finding(again, "pg_verifybackup", c.incremental)
    assert relied["details"]["relied_on"] == first["now"]
    assert relied["message"].startswith(
        f"backup {c.incremental}: relies on the check of {c.full} + {c.incremental} combined "
        "and verified at "
    )
    assert row(again, c.incremental)["pg_verifybackup"].startswith("ok before: combined at ")
    assert row(again, c.incremental)["pg_verifybackup_s"] is None
    state = _state(c.primary)
    assert state["chains"][c.incremental]["checked_at"] == first["now"]
    del state["chains"][c.incremental]  # without the earlier check, the same run combines
    (c.primary / "verification" / "state.json").write_text(json.dumps(state))
    code, unrecorded = run_verify(c.site, c.incremental)
    assert code == 2 and row(unrecorded, c.incremental)["pg_verifybackup"] == "failed"
    assert str(scratch) in finding(unrecorded, "pg_verifybackup", c.incremental)["message"]

    scratch.mkdir()
    code, first = run_verify(c.site, c.incremental)  # recorded again
    assert code == 0 and row(first, c.incremental)["pg_verifybackup"] == "ok", problems(first)
    code, forced = run_verify(c.site, c.incremental, "--content")
    assert code == 0 and row(forced, c.incremental)["pg_verifybackup"] == "ok", problems(forced)
    assert "relied_on" not in finding(forced, "pg_verifybackup", c.incremental)["details"]
    assert _state(c.primary)["chains"][c.incremental]["checked_at"] == forced["now"]

    digest = _recompress(c, c.incremental)
    code, changed = run_verify(c.site, c.incremental)
    assert code == 0 and row(changed, c.incremental)["pg_verifybackup"] == "ok", problems(changed)
    assert "relied_on" not in finding(changed, "pg_verifybackup", c.incremental)["details"]
    assert row(changed, c.incremental)["content"] == "ok"  # its new bytes checked again too
    recorded = _state(c.primary)["chains"][c.incremental]
    assert recorded["checked_at"] == changed["now"]
    assert recorded["digests"][f"backups/{c.incremental}/base.tar.zst"] == digest


def test_archived_wal_is_decompressed_once_then_read_against_its_digest(
    clone: Callable[[], Base],
) -> None:
    """A WAL object's first read decompresses it (its zstd frame checksum) and records the
    SHA-256 of its stored bytes; later reads compare with that digest. Bytes that change
    afterwards, even into another valid zstd frame of the same WAL, are a CRITICAL finding;
    ``--all`` decompresses everything again."""
    c = clone()
    code, first = run_verify(c.site, "--skip-pg-verifybackup")
    assert code == 0, problems(first)
    count = finding(first, "checksums", "wal")["message"].split()[0]  # every archived file
    assert f"intact: {count} decompressed today" in finding(first, "checksums", "wal")["message"]
    code, again = run_verify(c.site, c.full, "--skip-pg-verifybackup")
    assert code == 0 and ": 0 decompressed today" in finding(again, "checksums", "wal")["message"]
    segment = segments(c.primary)[-1]
    path = wal_path(c.primary, segment)
    raw = zstandard.ZstdDecompressor().decompressobj().decompress(path.read_bytes())
    path.write_bytes(zstandard.ZstdCompressor(level=9, write_checksum=True).compress(raw))
    code, changed = run_verify(c.site, c.full, "--skip-pg-verifybackup")
    assert code == 2 and ("CRITICAL", "checksums", segment) in problems(changed)
    assert "does not match its first read" in finding(changed, "checksums", segment)["message"]
    code, everything = run_verify(c.site, "--all", "--skip-pg-verifybackup")
    message = finding(everything, "checksums", "wal")["message"]
    assert code == 0 and f"intact: {count} decompressed today" in message, message


def test_one_label_unknown_label_and_unreachable_repository(clone: Callable[[], Base]) -> None:
    c = clone()
    code, report = run_verify(c.site, c.incremental, "--skip-pg-verifybackup")
    assert code == 0, problems(report)
    assert [r["label"] for r in report["backups"]] == [c.full, c.incremental]
    assert not [f for f in report["findings"] if f["check"].startswith("freshness")]
    c.site.write_config(database={"url": "postgresql://powr@127.0.0.1:9/powr"})
    code, report = run_verify(c.site, "--skip-pg-verifybackup")
    assert code == 3 and problems(report) == [("UNKNOWN", "freshness.archiver", None)]
    message = finding(report, "freshness.archiver")["message"]
    assert message.startswith("database unreachable: cannot read pg_stat_archiver on ")
    assert "postgresql://powr@127.0.0.1:9/powr" in message
    unknown = c.site.cli("verify", "20200101T000000F")
    assert unknown.returncode == 3 and "no backup '20200101T000000F'" in unknown.stderr
    c.site.write_config(
        backup={
            "storage": {
                "primary": {
                    "kind": "s3",
                    "url": "s3://nowhere/x",
                    "endpoint_url": "http://127.0.0.1:9",
                    "region": "us-east-1",
                    "access_key_id": "x",
                    "secret_access_key": "y",
                }
            }
        }
    )
    unreachable = c.site.cli("verify")
    assert unreachable.returncode == 3, unreachable.stdout + unreachable.stderr
    assert "127.0.0.1:9" in unreachable.stderr


def test_test_restore_result_is_a_finding(clone: Callable[[], Base]) -> None:
    c = clone()
    calls: list[str | None] = []

    def failing(settings: Any, *, label: str | None = None, echo: Any = None) -> dict[str, Any]:
        calls.append(label)
        return {"label": label, "chain": [], "ok": False, "queries": [], "timings": {},
                "error": "recovery ended before the consistency point"}  # fmt: skip

    report = verify(c.site.settings, restore=failing, pg_verifybackup=False)  # handed in
    assert calls == [c.incremental]  # the newest backup
    found = [f for f in report.findings if f.check == "test_restore"]
    assert [(f.severity, f.object) for f in found] == [(Severity.CRITICAL, c.incremental)]
    assert "recovery ended before the consistency point" in found[0].message
    assert report.status == Severity.CRITICAL and report.to_dict()["test_restore"]["ok"] is False


# --- the daily cost model --------------------------------------------------------------------


def _damage_found(report: VerificationReport, label: str) -> bool:
    return any(
        f.check == "checksums"
        and f.severity == Severity.CRITICAL
        and f.details.get("label") == label
        for f in report.findings
    )


def test_daily_verification_reads_what_is_new_and_finds_old_damage_in_time(
    clone: Callable[[], Base],
) -> None:
    c = clone()
    settings = c.site.settings
    now = datetime.now(UTC)
    first = verify(settings, now=now, pg_verifybackup=False)
    plan = first.figures["plan"]
    assert plan["bytes_skipped"] == 0 and plan["reasons"].get("new", 0) > 0
    total = plan["bytes_to_read"]
    second = verify(settings, now=now + timedelta(hours=1), pg_verifybackup=False)
    plan = second.figures["plan"]
    # nothing due; "new" only for WAL the running cluster archived meanwhile
    assert set(plan["reasons"]) <= {"rotation", "history", "new"}, plan
    assert plan["bytes_skipped"] > 0 and plan["bytes_to_read"] < total
    assert [r.content for r in second.backups] != ["not checked"] * 2

    # damage that today's reads may not reach: found by --all at once, by the daily run in time
    data = c.primary / "backups" / c.incremental / "base.tar.zst"
    stored = bytearray(data.read_bytes())
    stored[len(stored) // 2] ^= 0x01
    data.write_bytes(bytes(stored))
    everything = verify(settings, now=now + timedelta(hours=2), pg_verifybackup=False,
                        everything=True)  # fmt: skip
    assert _damage_found(everything, c.incremental)
    assert everything.figures["plan"]["bytes_skipped"] == 0
    found_on = None
    for day in range(1, 8):
        daily = verify(settings, now=now + timedelta(days=day), pg_verifybackup=False)
        if _damage_found(daily, c.incremental):
            found_on = day
            break
    assert found_on is not None, "the damaged object was not re-read within reread_every"
    state = json.loads((c.primary / "verification" / "state.json").read_text())
    assert f"backups/{c.incremental}/base.tar.zst" not in state["objects"]  # never trusted
    assert state["content"].keys() >= {c.full}


def test_damaged_wal_in_a_backups_range_is_found_by_parsing_it(clone: Callable[[], Base]) -> None:
    """A segment of the full's WAL range whose content is damaged, then compressed again so
    that its stored bytes and zstd frame are sound (what a bad disk under the archiver, or a
    faulty copy, leaves): only parsing the WAL finds it, as pg_verifybackup would."""
    c = clone()
    manifest = json.loads((c.primary / "backups" / c.full / "backup_manifest").read_bytes())
    [wal_range] = manifest["WAL-Ranges"]
    start = parse_lsn(wal_range["Start-LSN"])
    name = record(c.primary, c.full)["start_wal"]
    assert parse_segment(name).number == start // SEGMENT
    raw = bytearray(zstandard.ZstdDecompressor().decompressobj().decompress(
        wal_path(c.primary, name).read_bytes()))  # fmt: skip
    raw[start % SEGMENT + 40] ^= 0xFF  # inside the first record of the range
    damaged = zstandard.ZstdCompressor(level=1, write_checksum=True).compress(bytes(raw))
    for repo in (c.primary, c.secondary):  # both copies agree: only the content is wrong
        wal_path(repo, name).write_bytes(damaged)
    code, report = run_verify(c.site, "--skip-pg-verifybackup")
    assert code == 2
    assert problems(report) == [("CRITICAL", "content", name)]
    found = finding(report, "content", name)
    assert found["message"].startswith(
        f"backup {c.full}: WAL {name}, in the range it needs to become consistent, does not "
        "parse with pg_waldump"
    )
    assert found["details"]["label"] == c.full
    assert row(report, c.full)["content"] == "failed"
    assert row(report, c.incremental)["content"] == "ok"  # its own range is intact
    assert c.full not in _state(c.primary)["content"]  # checked again at the next read
    assert record(c.primary, c.full)["verified_at"] != report["now"]  # not stamped verified

    c = clone()  # a segment of the incremental's range missing from the archive
    name = record(c.primary, c.incremental)["start_wal"]
    wal_path(c.primary, name).unlink()
    code, report = run_verify(c.site, c.incremental, "--skip-pg-verifybackup")
    assert code == 2 and ("CRITICAL", "content", name) in problems(report)
    assert "is missing from the archive file://" in finding(report, "content", name)["message"]
    assert row(report, c.incremental)["content"] == "failed"


# --- readers and writers of a repository ---------------------------------------------------


def _wal_names(repo: Path) -> set[str]:
    return {p.name for p in (repo / "wal").rglob("*.zst")}


def _plant_mark(repo: Path, name: str, mark: dict[str, Any]) -> Path:
    path = repo / "locks" / "readers" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(mark))
    return path


def test_expiry_waits_for_a_verification_and_verification_for_expiry(
    clone: Callable[[], Base], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A verification marks itself as a reader of the primary; expiry deletes nothing while a
    live reader's mark is there (waits, then exit 3 naming it), ignores and removes a crashed
    reader's stale mark, and a verification gives way to an expiry in progress. Run for real
    side by side, ``verify --all`` and ``backup expire`` give no false CRITICAL."""
    c = clone()
    c.site.write_config(backup={"retention": {"logs": "1s"}})  # WAL between backups may go
    before = _wal_names(c.primary)
    dry = c.site.cli("backup", "expire", "--dry-run", "--json")
    going = [d["item"] for d in json.loads(dry.stdout)["decisions"]
             if d["kind"] == "wal" and d["action"] == "delete"]  # fmt: skip
    assert going, dry.stdout

    now = datetime.now(UTC).isoformat()
    alive = {"host": socket.gethostname(), "pid": os.getpid(), "purpose": "verification",
             "acquired_at": now, "heartbeat": now}  # fmt: skip
    mark = _plant_mark(c.primary, "live", alive)
    refused = c.site.cli("backup", "expire", "--wait", "0")
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "a verification is reading" in refused.stderr
    assert f"pid {os.getpid()} on {socket.gethostname()}" in refused.stderr
    assert _wal_names(c.primary) == before  # nothing deleted
    crashed = subprocess.Popen(["true"])  # a reader whose process is gone
    crashed.wait()
    mark.unlink()
    stale = _plant_mark(c.primary, "crashed", {**alive, "pid": crashed.pid})
    holder = {**alive, "purpose": "expiry", "deletes": True}
    (c.primary / "locks" / "backup.lock").write_text(json.dumps(holder))
    monkeypatch.setattr(runner, "READER_WAIT_S", 1.0)
    with pytest.raises(LockError, match=r"expiry .* is deleting from .*the verification waited"):
        verify(c.site.settings, pg_verifybackup=False)
    (c.primary / "locks" / "backup.lock").unlink()
    assert stale.exists()

    verifier = c.site.popen("verify", "--all", "--json")
    readers = c.primary / "locks" / "readers"
    deadline = time.monotonic() + 60
    while verifier.poll() is None and time.monotonic() < deadline:
        if any(p.name != "crashed" for p in readers.iterdir()):
            break
        time.sleep(0.02)
    assert any(p.name != "crashed" for p in readers.iterdir()), "verification left no mark"
    expiry = c.site.popen("backup", "expire", "--json")  # waits for the verification
    out, err = verifier.communicate(timeout=300)
    assert verifier.returncode == 0, err
    report = json.loads(out)
    assert problems(report) == [], problems(report)
    out, err = expiry.communicate(timeout=300)
    assert expiry.returncode == 0, err
    assert not stale.exists()  # the crashed reader's mark is removed, not waited for
    assert not {f"{name}.zst" for name in going} & _wal_names(c.primary)  # expiry did delete
    assert not readers.exists() or not list(readers.iterdir())  # verification removed its mark


# --- positive evidence: only what was read and matched is recorded ---------------------------


def _state(repo: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((repo / "verification" / "state.json").read_text())
    return data


def _flip(path: Path) -> None:
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0x01
    path.write_bytes(bytes(content))


def test_a_copy_without_its_record_is_not_recorded_as_read(clone: Callable[[], Base]) -> None:
    """The secondary holds a backup's data object, damaged, but not its backup.json yet (a copy
    in progress): nothing of it is read, so nothing of it is recorded; once the record
    arrives, the next day's run reads the data object and finds the damage."""
    c = clone()
    copy = c.secondary / "backups" / c.incremental
    (copy / "backup.json").unlink()
    _flip(copy / "base.tar.zst")
    now = datetime.now(UTC)
    first = verify(c.site.settings, now=now, pg_verifybackup=False)
    found = [(f.severity, f.object) for f in first.findings
             if f.check == "secondary" and f.severity != Severity.OK]  # fmt: skip
    assert found == [(Severity.WARNING, c.incremental)]  # reported: not in the secondary
    recorded = _state(c.secondary)["objects"]
    assert not [k for k in recorded if k.startswith(f"backups/{c.incremental}/")], recorded
    assert f"backups/{c.full}/base.tar.zst" in recorded  # what was read is recorded
    assert not [k for k in _state(c.primary)["objects"] if k.endswith("/backup.json")]
    shutil.copy2(c.primary / "backups" / c.incremental / "backup.json", copy / "backup.json")
    later = verify(c.site.settings, now=now + timedelta(days=1), pg_verifybackup=False)
    found = [(f.severity, f.object) for f in later.findings
             if f.check == "secondary" and f.severity != Severity.OK]  # fmt: skip
    assert found == [(Severity.WARNING, f"{c.incremental}/base.tar.zst")]


def test_a_data_object_is_read_even_when_its_manifest_is_gone(clone: Callable[[], Base]) -> None:
    """Without its manifest the content check cannot run; the data object is still read back
    against its SHA-256, its damage reported, and it is not recorded as read."""
    c = clone()
    (c.primary / "backups" / c.full / "backup_manifest").unlink()
    _flip(c.primary / "backups" / c.full / "base.tar.zst")
    report = verify(c.site.settings, pg_verifybackup=False)
    found = {(f.severity, f.check, f.object) for f in report.findings
             if f.severity != Severity.OK}  # fmt: skip
    assert (Severity.CRITICAL, "checksums", f"{c.full}/base.tar.zst") in found, found
    assert (Severity.CRITICAL, "checksums", f"{c.full}/backup_manifest") in found
    recorded = _state(c.primary)["objects"]
    assert not [k for k in recorded if k.startswith(f"backups/{c.full}/")], recorded
    assert f"backups/{c.incremental}/base.tar.zst" in recorded


# --- failed runs, for real -----------------------------------------------------------------


def test_one_failed_backup_warns_two_are_critical(pg_tmp: Path) -> None:
    site = Site.create()
    try:
        site.sql("CREATE TABLE lifts (id serial PRIMARY KEY, kg numeric, note text)")
        _write(site, 1_000)
        assert site.cli("backup", "full").returncode == 0
        _write(site, 100)
        site.switch_wal()
        site.sql("ALTER SYSTEM SET summarize_wal = off")
        site.sql("SELECT pg_reload_conf()")
        failed = []
        for expected, severity in ((1, "WARNING"), (2, "CRITICAL")):
            run = site.cli("backup", "incremental")
            assert run.returncode == 2 and "summarize_wal is off" in run.stderr
            failed.insert(0, site.backups()[-1]["label"])
            code, report = run_verify(site, "--skip-pg-verifybackup")
            assert code == expected
            assert problems(report) == [(severity, "failed_backups", failed[0])]
            message = finding(report, "failed_backups")["message"]
            assert f"{failed[0]} (incremental): summarize_wal is off" in message
            assert finding(report, "failed_backups")["details"]["labels"] == failed
        assert "2 most recent backup runs failed" in message
        assert row(report, failed[0])["status"] == "failed"

        # Archiving that fails: the server's OS user can no longer write into the archive.
        wal_dir = site.root / "state" / "backups" / "wal" / "0000000100000000"
        wal_dir.chmod(0o500)
        _write(site, 100)
        segment = site.sql("SELECT pg_walfile_name(pg_switch_wal())")[0][0]
        deadline = time.monotonic() + 60
        while not site.sql("SELECT failed_count FROM pg_stat_archiver")[0][0]:
            assert time.monotonic() < deadline, "the archiver did not fail"
            time.sleep(0.2)
        code, report = run_verify(site, "--skip-pg-verifybackup")
        assert code == 2
        assert problems(report) == [
            ("CRITICAL", "failed_backups", failed[0]),
            ("WARNING", "freshness.archiver", segment),
        ]
        message = finding(report, "freshness.archiver", segment)["message"]
        assert message.startswith(f"archiving is failing: {segment} failed at")
    finally:
        site.destroy()


DEBIAN_15 = Path("/usr/lib/postgresql/15/bin")


@pytest.mark.pg15
@pytest.mark.skipif(not DEBIAN_15.exists(), reason="Debian's postgresql-15 is not installed")
def test_postgresql_15_full_and_wal() -> None:
    site = Site.create(postgres={"bin_dir": str(DEBIAN_15)})
    try:
        site.sql("CREATE TABLE lifts (id serial PRIMARY KEY, kg numeric, note text)")
        _write(site, 1_000)
        assert site.cli("backup", "full").returncode == 0
        _write(site, 1_000)
        site.switch_wal()
        code, report = run_verify(site)
        assert code == 0, problems(report)
        label = report["backups"][0]["label"]
        assert row(report, label)["content"] == "ok"  # PostgreSQL 15's manifest, version 1
        assert row(report, label)["pg_verifybackup"].startswith("not needed: a full backup's")
        assert (
            "PostgreSQL 15 has no incremental backups"
            in (finding(report, "freshness.incremental")["message"])
        )
    finally:
        site.destroy()


# --- timelines and pure continuity ---------------------------------------------------------


def _archive(names: dict[str, bytes | None]) -> tuple[VerificationReport, WalArchive]:
    """An archive from WAL names: segments get 16 MiB; history files get their content."""
    now = datetime.now(UTC)
    report = VerificationReport("file:///x", None, None, now)
    objects: dict[str, Any] = {n: types.SimpleNamespace(mtime=now) for n in names}
    results = {
        name: ObjectCheck(name, "ok", None, 1, len(content) if content else SEGMENT, content)
        for name, content in names.items()
    }
    return report, build_archive(report, objects, results)


def test_history_files_parse_like_postgresql() -> None:
    text = "1\t0/3000000\tno recovery target specified\n\n2\t0/5000A28\tat restore point\n"
    assert parse_history(text, 3) == (
        HistoryEntry(1, 0x3000000, "no recovery target specified"),
        HistoryEntry(2, 0x5000A28, "at restore point"),
    )
    for bad in ("", "1\tnot-an-lsn\n", "3\t0/1\tx\n", "2\t0/5\tx\n1\t0/6\tx\n"):
        with pytest.raises(ValueError):
            parse_history(bad, 3)


def test_recovery_follows_the_timeline_switch() -> None:
    history = b"1\t0/5000A28\tpromoted\n"
    names: dict[str, bytes | None] = {f"0000000100000000000000{n:02X}": None for n in (2, 3, 4)}
    names.update({f"0000000200000000000000{n:02X}": None for n in (5, 6, 8)})
    names["00000002.history"] = history
    report, archive = _archive(names)
    assert [f for f in report.findings if f.severity != Severity.OK] == []
    path = recovery_path(archive, 1, 2, 0x2000100)
    assert path == [Range(1, 2, 4), Range(2, 5, None)]
    result = walk(archive, path)
    assert [g.span for g in result.gaps] == ["000000020000000000000007"]
    assert result.reached == (2, 6)
    # A backup taken on timeline 1 after the switch point cannot follow timeline 2.
    assert recovery_path(archive, 1, 6, 0x6000000) == [Range(1, 6, None)]


def test_missing_or_unreadable_history_is_a_warning() -> None:
    names: dict[str, bytes | None] = {
        "000000010000000000000002": None,
        "000000020000000000000003": None,
        "000000030000000000000004": None,
        "00000003.history": b"garbage\n",
    }
    report, _ = _archive(names)
    found = sorted(
        (f.severity, f.object, f.message) for f in report.findings if f.check == "timeline_history"
    )
    assert [(s, o) for s, o, _ in found] == [
        (Severity.WARNING, "00000002.history"),
        (Severity.WARNING, "00000003.history"),
    ]
    assert "history file 00000002.history is missing" in found[0][2]
    assert "00000003.history is unreadable" in found[1][2]


def test_new_timeline_must_start_at_its_switch_point() -> None:
    names: dict[str, bytes | None] = {
        "000000010000000000000002": None,
        "000000020000000000000002": None,  # before the switch point's segment 3
        "000000020000000000000003": None,
        "00000002.history": b"1\t0/3000100\tpromoted\n",
    }
    report, _ = _archive(names)
    found: list[Finding] = [f for f in report.findings if f.severity != Severity.OK]
    assert [(f.check, f.object) for f in found] == [("timeline_history", "00000002.history")]
    assert "before its switch point 0/3000100" in found[0].message


# --- last: a real test restore on the base site --------------------------------------------


@pytest.mark.slow
def test_verify_with_a_real_test_restore(base: Base) -> None:
    code, report = run_verify(base.site, "--restore", "--skip-pg-verifybackup")
    assert code == 0, problems(report)
    result = report["test_restore"]
    assert result["ok"] is True and result["label"] == base.incremental
    assert result["chain"] == [base.full, base.incremental]
    assert "restored into a scratch cluster" in finding(report, "test_restore")["message"]


def test_verify_of_a_repository_not_created_yet_creates_nothing(tmp_path: Path) -> None:
    """A first verify on a new host (or run from a folder without a configuration) reads
    nothing and records nothing: no repository folder appears with an empty state in it."""
    from cli_helpers import run_cli

    config = tmp_path / "powrops.toml"
    config.write_text(to_toml({
        "database": {"url": "postgresql://powr@127.0.0.1:9/powr"},
        "state": {"dir": str(tmp_path / "state")},
        "backup": {"storage": {"primary": {"kind": "file", "url": (tmp_path / "repo").as_uri()}}},
    }))  # fmt: skip
    done = run_cli("-c", str(config), "verify")
    assert done.returncode == 2, done.stdout + done.stderr  # no backup: nothing to restore
    assert sorted(p.name for p in tmp_path.iterdir()) == ["powrops.toml"]
