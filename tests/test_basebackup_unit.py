"""Pure parts of the backup path: pg_basebackup's argument list, the tar sniffer, WAL names."""

from __future__ import annotations

import io
import os
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import zstandard

from powrops.backup import basebackup
from powrops.backup.basebackup import (
    PgBaseBackup,
    TarSniffer,
    compress_frames,
    label_facts,
    manifest_facts,
)
from powrops.backup.model import new_label, wal_key
from powrops.backup.wal.positions import format_lsn, kind_of, parse_lsn, parse_segment, segment_of
from powrops.errors import BackupError
from powrops.pg.binaries import find_binaries


def test_pg_basebackup_argument_list() -> None:
    binaries = find_binaries()
    argv = PgBaseBackup(binaries, "db.internal", 5433, "powr_backup", "20261126T000000F").argv()
    assert argv[0].endswith("pg_basebackup")
    assert argv[argv.index("--dbname") + 1] == "host=db.internal port=5433 user=powr_backup"
    for flag, value in (
        ("--pgdata", "-"),
        ("--format", "tar"),
        ("--wal-method", "fetch"),
        ("--manifest-checksums", "CRC32C"),
        ("--checkpoint", "fast"),
    ):
        assert argv[argv.index(flag) + 1] == value
    assert "--no-password" in argv and "--incremental" not in argv
    assert "--no-verify-checksums" not in argv
    inc = PgBaseBackup(
        binaries, "h", 1, "u", "l", incremental_manifest=Path("/tmp/m"), verify_checksums=False
    ).argv()
    assert inc[inc.index("--incremental") + 1] == "/tmp/m" and "--no-verify-checksums" in inc
    assert not any("password" in a.lower() and "=" in a for a in argv)


def _tar(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.parametrize("chunk", [1, 7, 511, 512, 513, 4096, 1 << 20])
def test_tar_sniffer_captures_manifest_and_label_at_any_chunking(chunk: int) -> None:
    stream = _tar(
        {
            "PG_VERSION": b"18\n",
            "base/1/1259": b"x" * 10_000,
            "backup_label": b"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n",
            "backup_manifest": b'{"manifest": true}' * 100,
        }
    )
    sniffer = TarSniffer()
    for start in range(0, len(stream), chunk):
        sniffer.feed(stream[start : start + chunk])
    assert sniffer.members == 4
    assert sniffer.captured["backup_manifest"] == b'{"manifest": true}' * 100
    assert sniffer.captured["backup_label"].startswith(b"START WAL LOCATION")


def test_manifest_and_label_facts() -> None:
    manifest = (
        b'{"PostgreSQL-Backup-Manifest-Version": 2, "System-Identifier": 7712, "Files": [{}, {}],'
        b' "WAL-Ranges": [{"Timeline": 3, "Start-LSN": "0/4000028", "End-LSN": "0/4000120"}]}'
    )
    facts = manifest_facts(manifest)
    assert facts == {
        "timeline": 3,
        "start_lsn": "0/4000028",
        "stop_lsn": "0/4000120",
        "files": 2,
        "manifest_version": 2,
        "system_identifier": "7712",
    }
    with pytest.raises(BackupError, match="WAL-Ranges"):
        manifest_facts(b'{"WAL-Ranges": []}')
    assert label_facts("START TIMELINE: 1\nLABEL: x: y\n") == {
        "START TIMELINE": "1",
        "LABEL": "x: y",
    }


def test_wal_names_and_positions() -> None:
    assert parse_lsn("0/3000028") == 0x3000028
    assert format_lsn(parse_lsn("1A/FF000028")) == "1A/FF000028"
    seg = segment_of(parse_lsn("1/FF000028"), 2)
    assert seg.name == "0000000200000001000000FF"
    assert seg.next().name == "000000020000000200000000"
    assert parse_segment(seg.name) == seg
    assert [
        kind_of(n)
        for n in (
            "000000010000000000000001",
            "00000002.history",
            "000000010000000000000001.partial",
            "000000010000000000000001.00000028.backup",
            "junk",
        )
    ] == ["segment", "history", "partial", "backup_label", "unknown"]
    assert (
        wal_key("000000010000000000000001") == "wal/0000000100000000/000000010000000000000001.zst"
    )
    assert wal_key("00000002.history") == "wal/00000002/00000002.history.zst"
    assert new_label("full").endswith("F") and new_label("incremental").endswith("I")


class _FullDisk(io.BytesIO):
    def write(self, data: Any) -> int:
        raise OSError("No space left on device")


@pytest.mark.timeout(60)
def test_frames_in_order_and_a_failed_write_stops_the_source_first() -> None:
    """Pieces compressed side by side are written in order, one zstd frame each, their
    sizes recorded; when writing fails, the source is stopped (pg_basebackup killed) before
    the threads are waited for, so none is left waiting on a pipe that no longer flows."""
    pieces = [bytes([n]) * 1000 for n in range(50)] + [b"end"]
    out = io.BytesIO()
    frames = compress_frames(pieces, out, frame_size=1000)
    assert frames.raw_size == 50_003 and len(frames.sizes) == 51
    stored = out.getvalue()
    assert sum(frames.sizes) == len(stored)
    for span, piece in zip(frames.spans(), pieces, strict=True):
        frame = stored[span.stored_offset : span.stored_offset + span.stored_size]
        assert zstandard.ZstdDecompressor().decompress(frame) == piece
        assert span.raw_size == len(piece) and span.raw_offset == pieces.index(piece) * 1000
    with pytest.raises(ValueError, match="piece 1 holds 999 bytes, not the 1000"):
        compress_frames([b"a" * 1000, b"b" * 999, b"c" * 1000], io.BytesIO(), frame_size=1000)

    read_end, write_end = os.pipe()

    def stalled() -> Iterator[bytes]:
        yield b"first"
        while data := os.read(read_end, 1000):  # nothing comes until the write end closes
            yield data

    with pytest.raises(OSError, match="No space left"):
        compress_frames(stalled(), _FullDisk(), abort=lambda: os.close(write_end))
    os.close(read_end)
    assert not [t for t in threading.enumerate() if t.name.startswith("ordered-")]


def test_pieces_are_read_into_a_few_reused_buffers() -> None:
    """The stream is read into a few buffers handed back once compressed (not a new one per
    frame), every frame but the last a whole FRAME_SIZE, the tar headers followed on the way."""
    tar = _tar({"PG_VERSION": b"18\n", "base/1/1": os.urandom(1 << 20) * 40,
                "backup_manifest": b"{}"})  # fmt: skip
    reading = basebackup._Pieces(io.BufferedReader(io.BytesIO(tar)), None)  # type: ignore[arg-type]
    held: list[object] = []  # every buffer handed back, kept so that no id is reused

    def release(piece: memoryview) -> None:
        held.append(piece.obj)
        reading.release(piece)

    out = io.BytesIO()
    frames = compress_frames(reading, out, release=release)
    assert frames.raw_size == reading.raw_size == len(tar) and len(frames.sizes) == 11
    assert [s.raw_size for s in frames.spans()][:2] == [basebackup.FRAME_SIZE] * 2
    reader = zstandard.ZstdDecompressor().stream_reader(out, read_across_frames=True)
    out.seek(0)
    assert reader.read() == tar
    assert reading.sniffer.captured["backup_manifest"] == b"{}"
    buffers = {id(buffer) for buffer in held}
    assert 1 <= len(buffers) <= (os.cpu_count() or 1) + 2 < len(frames.sizes)  # reused
