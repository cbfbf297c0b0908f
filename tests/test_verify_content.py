"""A backup's content checked against its manifest in one pass, and the daily read plan.

The backups here are built by hand in a ``file://`` repository, the way pg_basebackup writes
them (a tar with ``backup_label``, data files and ``pg_wal/``, a manifest with CRC32C checksums
and its own SHA-256), so that each defect can be planted exactly. The same check on real
backups of a real cluster is exercised by tests/test_verify.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import crc32c
import pytest
import zstandard

from powrops.backup.basebackup import compress_frames
from powrops.backup.model import (
    DATA_FILE,
    MANIFEST_FILE,
    BackupRecord,
    StoredFile,
    backup_key,
    wal_key,
)
from powrops.config import Settings
from powrops.storage.base import ObjectInfo, Repository
from powrops.storage.registry import open_repository
from powrops.verify import content, walparse
from powrops.verify.runner import scratch_dir
from powrops.verify.state import ChainCheck, ObjectRead, VerificationState, plan

SEGMENT = 16 << 20  # PostgreSQL's default segment size; zeros compress to nothing
WAL_NAME = "000000010000000000000003"
FILES = {
    "backup_label": b"START WAL LOCATION: 0/3000028\n",
    "PG_VERSION": b"18\n",
    "base/5/16384": bytes(range(256)) * 64,
    "global/pg_control": b"\x01" * 8192,
}


def _manifest(files: dict[str, bytes], *, algorithm: str = "CRC32C") -> bytes:
    entries = []
    for path, data in files.items():
        if algorithm == "CRC32C":
            checksum = crc32c.crc32c(data).to_bytes(4, "little").hex()
        else:
            checksum = hashlib.sha256(data).hexdigest()
        entries.append(
            {"Path": path, "Size": len(data), "Last-Modified": "2026-12-04 00:00:00 GMT",
             "Checksum-Algorithm": algorithm, "Checksum": checksum}
        )  # fmt: skip
    body = (
        '{ "PostgreSQL-Backup-Manifest-Version": 2,\n"System-Identifier": 1,\n"Files": [\n'
        + ",\n".join(json.dumps(e) for e in entries)
        + ' ],\n"WAL-Ranges": [\n{ "Timeline": 1, "Start-LSN": "0/3000028", '
        '"End-LSN": "0/3000120" }\n],\n'
    ).encode()
    return body + f'"Manifest-Checksum": "{hashlib.sha256(body).hexdigest()}"}}\n'.encode()


def _tar(members: dict[str, bytes], tar_format: int = tarfile.USTAR_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tar_format) as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _store(
    repo: Repository, label: str, members: dict[str, bytes], manifest: bytes,
    tar_format: int = tarfile.USTAR_FORMAT, frame_size: int | None = None,
) -> BackupRecord:  # fmt: skip
    """The backup in the repository: one zstd stream (as backups were written before frames
    were recorded), or with ``frame_size`` frames of that many bytes and their record."""
    raw = _tar(members, tar_format)
    frames = None
    if frame_size is None:
        stored = zstandard.ZstdCompressor(level=1).compress(raw)
    else:
        out = io.BytesIO()
        pieces = [raw[i : i + frame_size] for i in range(0, len(raw), frame_size)]
        frames = compress_frames(pieces, out, frame_size=frame_size)
        stored = out.getvalue()
    repo.put_bytes(backup_key(label, DATA_FILE), stored)
    repo.put_bytes(backup_key(label, MANIFEST_FILE), manifest)
    data = StoredFile(DATA_FILE, len(raw), len(stored), hashlib.sha256(stored).hexdigest(), None,
                      frames)  # fmt: skip
    return BackupRecord(label=label, kind="full", status="ok",
                        start_time=datetime(2026, 12, 4, tzinfo=UTC), files=(data,))  # fmt: skip


def _members(**changes: bytes | None) -> dict[str, bytes]:
    members = {**FILES, f"pg_wal/{WAL_NAME}": b"\x00" * SEGMENT, MANIFEST_FILE: b"{}"}
    for name, data in changes.items():
        name = name.replace("__", "/")
        if data is None:
            members.pop(name)
        else:
            members[name] = data
    return members


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return open_repository((tmp_path / "repo").as_uri())


#: one zstd stream (a backup written before frames), frames smaller than a member and than the
#: decoded buffers (headers and data across frame boundaries), a frame larger than the tar
LAYOUTS = [None, 4096 + 100, 1 << 26]


@pytest.mark.parametrize("frame_size", LAYOUTS)
def test_an_intact_backup_matches_its_manifest(repo: Repository, frame_size: int | None) -> None:
    record = _store(repo, "20261204T000000F", _members(), _manifest(FILES), frame_size=frame_size)
    frames = record.files[0].frames
    assert (frames is None) == (frame_size is None)
    checked = content.check(repo, record)
    assert checked.ok, checked.problems
    assert checked.files == len(FILES)
    assert checked.raw_bytes == sum(map(len, FILES.values()))
    assert checked.sha256 == record.files[0].sha256


@pytest.mark.parametrize("tar_format", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_long_names_in_gnu_and_pax_archives(repo: Repository, tar_format: int) -> None:
    long = "base/16384/" + "t" * 150  # beyond the 100 bytes of a plain tar header
    files = {**FILES, long: b"long\n"}
    record = _store(repo, "L", _members(**{long.replace("/", "__"): b"long\n"}),
                    _manifest(files), tar_format)  # fmt: skip
    checked = content.check(repo, record)
    assert checked.ok and checked.files == len(files), checked.problems
    record = _store(repo, "L", _members(**{long.replace("/", "__"): b"LONG\n"}),
                    _manifest(files), tar_format)  # fmt: skip
    assert content.check(repo, record).problems[0].startswith(f"{long} does not match")


def test_sha256_manifests_are_checked_too(repo: Repository) -> None:
    record = _store(repo, "L", _members(), _manifest(FILES, algorithm="SHA256"))
    assert content.check(repo, record).ok
    changed = {**FILES, "PG_VERSION": b"17\n"}
    record = _store(repo, "L", _members(PG_VERSION=b"17\n"), _manifest(FILES, algorithm="SHA256"))
    assert content.check(repo, record).problems == [
        f"PG_VERSION does not match its SHA256 in the manifest (read "
        f"{hashlib.sha256(changed['PG_VERSION']).hexdigest()}, manifest "
        f"{hashlib.sha256(FILES['PG_VERSION']).hexdigest()})"
    ]


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"base__5__16384": b"\xff" + FILES["base/5/16384"][1:]},
         "base/5/16384 does not match its CRC32C in the manifest"),
        ({"global__pg_control": b"\x01" * 100},
         "global/pg_control is 100 bytes, the manifest says 8192"),
        ({"base__5__16384": None}, "base/5/16384 is in the manifest but not in the backup"),
        ({"base__5__99999": b"x"}, "base/5/99999 is in the backup but not in the manifest"),
        ({f"pg_wal__{WAL_NAME}": None},
         f"WAL {WAL_NAME}, needed for consistency, is not in pg_wal/"),
    ],
)  # fmt: skip
def test_a_planted_content_defect_is_named(
    repo: Repository, changes: dict[str, bytes | None], expected: str
) -> None:
    record = _store(repo, "L", _members(**changes), _manifest(FILES))
    checked = content.check(repo, record)
    assert checked.status == "content"
    assert len(checked.problems) == 1 and checked.problems[0].startswith(expected)


def test_a_manifest_edited_after_the_backup_is_refused(repo: Repository) -> None:
    manifest = _manifest(FILES).replace(b'"Size": 3,', b'"Size": 4,')
    record = _store(repo, "L", _members(), manifest)
    checked = content.check(repo, record)
    assert checked.status == "content"
    assert checked.problems == [
        f"{MANIFEST_FILE} is not a valid manifest: its Manifest-Checksum does not match its content"
    ]


@pytest.mark.parametrize("frame_size", LAYOUTS)
def test_damaged_stored_bytes_are_a_checksum_problem(
    repo: Repository, frame_size: int | None
) -> None:
    record = _store(repo, "L", _members(), _manifest(FILES), frame_size=frame_size)
    key = backup_key("L", DATA_FILE)
    stored = bytearray(repo.get_bytes(key))
    stored[len(stored) // 2] ^= 0xFF
    repo.put_bytes(key, bytes(stored))
    checked = content.check(repo, record)
    assert checked.status == "differs" and not checked.ok and checked.problems == []
    assert checked.stored_problem is not None
    assert "does not match its recorded SHA-256" in checked.stored_problem
    assert checked.stored_bytes == len(stored)  # read to the end all the same
    # damaged when it was written (its recorded SHA-256 is of these bytes): the frame is named
    data = replace(record.files[0], sha256=hashlib.sha256(stored).hexdigest())
    checked = content.check(repo, replace(record, files=(data,)))
    assert checked.status == "damaged" and checked.stored_problem is not None
    assert checked.stored_problem.startswith("cannot be decompressed and unpacked: ")
    if frame_size is not None and frame_size < 1 << 20:  # the damaged frame is named
        assert " does not decode (" in checked.stored_problem, checked.stored_problem
    repo.put_bytes(key, bytes(stored[: len(stored) // 2]))  # cut short
    assert not content.check(repo, record).ok
    assert not [t for t in threading.enumerate() if t.name.startswith(("content-zstd", "ordered"))]


def test_the_recorded_frames_are_what_is_read(repo: Repository) -> None:
    """With frames recorded, each is decoded on its own as recorded: a record that places
    them wrongly is a damaged object naming the frame (one stream read to its end would not
    notice), and the object still reads as one zstd stream."""
    record = _store(repo, "L", _members(), _manifest(FILES), frame_size=1 << 20)
    data = record.files[0]
    assert data.frames is not None and len(data.frames.sizes) == 17  # 16 MiB + a few KiB
    stored = repo.get_bytes(backup_key("L", DATA_FILE))
    whole = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(stored), read_across_frames=True)
    assert whole.read() == _tar(_members())
    wrong = replace(data.frames, frame_size=1 << 19)  # each frame holds twice what is recorded
    checked = content.check(repo, replace(record, files=(replace(data, frames=wrong),)))
    assert checked.status == "damaged" and checked.stored_problem == (
        "cannot be decompressed and unpacked: its frame at byte 0 holds other than the 524288 "
        "bytes recorded"
    )
    sizes = data.frames.sizes  # two frames recorded as one: the bytes after the first count
    merged = replace(data.frames, sizes=(sizes[0] + sizes[1], *sizes[2:]))
    checked = content.check(repo, replace(record, files=(replace(data, frames=merged),)))
    assert checked.status == "damaged" and checked.stored_problem is not None
    assert checked.stored_problem.startswith(
        "cannot be decompressed and unpacked: its frame at byte 0 does not decode ("
    ), checked.stored_problem
    assert content.check(repo, replace(record, files=(replace(data, frames=None),))).ok


@pytest.mark.parametrize("frame_size", [None, 1 << 20, 4 << 20])
def test_members_across_many_decoded_buffers_and_no_thread_left(
    repo: Repository, frame_size: int | None
) -> None:
    """Files larger than the decoding buffers (or frames), and headers that straddle two of
    them, are checked whole; a stream cut short is damaged, and the decoding threads never
    outlive the check."""
    odd = content.BUFFER + 777  # every later header straddles a buffer boundary
    files = {**FILES, "base/5/big": bytes(range(256)) * (7 << 12), "base/5/odd": b"x" * odd,
             "base/5/after": b"y" * 1000}  # fmt: skip
    members = {**_members(), **files}
    record = _store(repo, "20261204T000000F", members, _manifest(files), frame_size=frame_size)
    checked = content.check(repo, record)
    assert checked.ok, checked.problems
    assert checked.files == len(files) and checked.raw_bytes == sum(map(len, files.values()))
    altered = {**members, "base/5/odd": b"x" * (odd - 1) + b"z"}
    record = _store(repo, "20261204T000001F", altered, _manifest(files), frame_size=frame_size)
    assert content.check(repo, record).problems == [
        "base/5/odd does not match its CRC32C in the manifest "
        f"(read {crc32c.crc32c(altered['base/5/odd']).to_bytes(4, 'little').hex()}, manifest "
        f"{crc32c.crc32c(files['base/5/odd']).to_bytes(4, 'little').hex()})"
    ]
    key = backup_key(record.label, DATA_FILE)
    repo.put_bytes(key, repo.get_bytes(key)[:-4096])
    assert content.check(repo, record).stored_problem is not None
    assert not [t for t in threading.enumerate() if t.name.startswith(("content-zstd", "ordered"))]


# --- the daily plan --------------------------------------------------------------------------

NOW = datetime(2026, 12, 4, 6, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


def _objects(count: int, size: int = 100) -> list[ObjectInfo]:
    return [ObjectInfo(f"wal/0000000100000000/{n:024X}.zst", size, NOW) for n in range(count)]


def test_everything_new_is_read_and_nothing_else_after() -> None:
    objects = _objects(70)
    first = plan(objects, VerificationState(), NOW, WEEK)
    assert first.counts() == {"new": 70} and first.bytes_skipped == 0
    state = VerificationState({o.key: ObjectRead(o.size, None, NOW) for o in objects})
    later = plan(objects, state, NOW + timedelta(hours=1), WEEK)
    # a day's share of the rotation: a seventh of the bytes
    assert later.counts() == {"rotation": 10} and later.bytes_to_read == 1000


def test_every_object_is_reread_within_the_period() -> None:
    objects = _objects(70)
    state = VerificationState({o.key: ObjectRead(o.size, None, NOW) for o in objects})
    last_read = {o.key: NOW for o in objects}
    day = NOW
    for _ in range(14):
        day += timedelta(days=1)
        today = plan(objects, state, day, WEEK)
        for key in today.reasons:
            state.objects[key] = ObjectRead(100, None, day)
            last_read[key] = day
        assert all(day - seen < WEEK for seen in last_read.values())
        assert today.bytes_to_read <= 2 * 1000  # never more than twice the day's share


def test_new_changed_and_required_objects_are_read() -> None:
    objects = _objects(3)
    state = VerificationState({
        objects[0].key: ObjectRead(100, None, NOW),
        objects[1].key: ObjectRead(99, None, NOW),
    })  # fmt: skip
    today = plan(objects, state, NOW, WEEK, always={objects[0].key: "history"})
    assert today.reasons == {objects[0].key: "history", objects[1].key: "changed",
                             objects[2].key: "new"}  # fmt: skip
    assert plan(objects, state, NOW, WEEK, everything=True).counts() == {"requested": 3}


def test_a_damaged_state_file_means_reading_everything(repo: Repository) -> None:
    repo.put_bytes("verification/state.json", b"{not json")
    state, problem = VerificationState.load(repo)
    assert state.objects == {} and problem is not None and "damaged" in problem
    repo.delete("verification/state.json")
    assert VerificationState.load(repo) == (VerificationState(), None)


def test_a_combined_chain_is_kept_with_its_digests_until_a_member_is_gone(
    repo: Repository,
) -> None:
    full, inc = "20261204T000000F", "20261204T010000I"
    digests = {f"backups/{full}/{DATA_FILE}": "aa", f"backups/{inc}/{DATA_FILE}": "bb"}
    check = ChainCheck((full, inc), digests, NOW)
    assert check.stands_for([full, inc], dict(digests))
    assert not check.stands_for([full, inc], {**digests, f"backups/{inc}/{DATA_FILE}": "cc"})
    assert not check.stands_for([inc], digests)  # other members
    repo.put_bytes("verification/state.json", VerificationState(chains={inc: check}).to_bytes())
    loaded, problem = VerificationState.load(repo)
    assert problem is None and loaded.chains == {inc: check}
    assert VerificationState().merge(loaded, set(digests)).chains == {inc: check}
    expired = {f"backups/{inc}/{DATA_FILE}"}  # its full is gone: the check is forgotten
    assert VerificationState(chains={inc: check}).merge(VerificationState(), expired).chains == {}
    # a state written before the chains were recorded: none is
    repo.put_bytes("verification/state.json", b'{"version": 1, "objects": {}, "content": {}}')
    assert VerificationState.load(repo) == (VerificationState(), None)


def test_a_chain_is_combined_in_memory_only_when_it_fits(tmp_path: Path) -> None:
    settings = Settings()
    assert scratch_dir(settings, 1 << 60) is None  # an exabyte: the temporary directory
    small = scratch_dir(settings, 1 << 20)
    assert small == ("/dev/shm" if os.access("/dev/shm", os.W_OK) else None)
    chosen = Settings.model_validate({"verification": {"scratch_dir": str(tmp_path)}})
    assert scratch_dir(chosen, 1 << 60) == str(tmp_path)


def test_pg_waldump_gets_the_arguments_pg_verifybackup_gives_it() -> None:
    """One range: its segments, and pg_waldump told the timeline, start and end."""
    wal_range = (1, "0/2FFFFE0", "0/3000120")
    names = [s.name for s in walparse.range_segments(wal_range, SEGMENT)]
    assert names == ["000000010000000000000002", "000000010000000000000003"]
    assert walparse.waldump_args(Path("/dev/shm/x"), wal_range) == [
        "--quiet", "--path=/dev/shm/x", "--timeline=1", "--start=0/2FFFFE0", "--end=0/3000120",
    ]  # fmt: skip
    ends_at_a_boundary = (1, "0/2000028", "0/3000000")  # the end LSN is not read
    assert [s.name for s in walparse.range_segments(ends_at_a_boundary, SEGMENT)] == [
        "000000010000000000000002"
    ]


class _SlowWaldump:
    """Stands in for the server's programs: a ``pg_waldump`` that writes its pid and sleeps."""

    def __init__(self, folder: Path) -> None:
        self.pid_file = folder / "waldump.pid"
        self.program = folder / "pg_waldump"
        self.program.write_text(f"#!/bin/sh\necho $$ > {self.pid_file}\nexec sleep 60\n")
        self.program.chmod(0o755)

    def path(self, name: str) -> Path:
        assert name == "pg_waldump"
        return self.program


def test_a_cancelled_wal_parse_stops_pg_waldump_at_once(repo: Repository, tmp_path: Path) -> None:
    """The parse beside a read that stopped (an interrupt, the object missing) must not keep
    the command waiting for pg_waldump: cancelled, it kills it within its poll interval."""
    repo.put_bytes(wal_key(WAL_NAME), zstandard.ZstdCompressor().compress(bytes(SEGMENT)))
    tools = _SlowWaldump(tmp_path)
    cancel = threading.Event()
    outcome: list[walparse.WalParse] = []
    wal_range = (1, "0/3000028", "0/3000120")
    worker = threading.Thread(target=lambda: outcome.append(walparse.parse(
        repo, [wal_range], SEGMENT, tools, lambda need: str(tmp_path), cancel)))  # type: ignore[arg-type]  # fmt: skip
    worker.start()
    for _ in range(100):  # pg_waldump started
        if tools.pid_file.exists() and tools.pid_file.read_text().strip():
            break
        time.sleep(0.05)
    pid = int(tools.pid_file.read_text())
    started = time.monotonic()
    cancel.set()
    worker.join(5)
    assert not worker.is_alive() and time.monotonic() - started < 2
    assert (outcome[0].status, outcome[0].reason) == ("not run", "stopped before it finished")
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    assert not list(tmp_path.glob("powrops-wal-*"))  # its scratch folder removed


def test_the_wal_parse_of_a_missing_object_is_cancelled(repo: Repository) -> None:
    """The data object is missing: the check ends as soon as it knows, cancelling the parse
    it started beside the read instead of waiting for it."""
    record = _store(repo, "20261204T000000F", _members(), _manifest(FILES), frame_size=1 << 20)
    repo.delete(backup_key(record.label, DATA_FILE))
    seen: list[bool] = []

    def blocking_parse(
        rec: BackupRecord, ranges: object, size: int, cancel: threading.Event
    ) -> walparse.WalParse:
        seen.append(cancel.wait(30))
        return walparse.WalParse(status="not run", reason="stopped before it finished")

    started = time.monotonic()
    checked = content.check(repo, record, blocking_parse)
    assert time.monotonic() - started < 5 and seen == [True]
    assert checked.status == "missing" and checked.wal is None


def test_the_verification_loads_crc32c_only_for_a_content_check() -> None:
    """The crc32c package reads its version from the installed packages' metadata when
    imported: loading the verification (every verify, readiness or drill command) must not."""
    import subprocess
    import sys

    probe = (
        "import sys, powrops.verify, powrops.cli.verify; "
        "print(sorted({'crc32c', 'importlib.metadata'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr
