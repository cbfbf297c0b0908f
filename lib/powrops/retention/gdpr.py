"""GDPR export: everything held about a user, live and archived, as portable JSON files.

``export_user`` writes one JSON file per table (an array of the rows, as PostgreSQL renders
them) plus ``archived_workouts.json`` / ``archived_workout_sets.json`` read from the user's
archive files through ``ops.archive_index`` (each file checked against the index first), and
``manifest.json`` (user id, generated_at, per file: rows, bytes, SHA-256). The directory is
created 0700 and every file 0600; an existing non-empty path is refused, never overwritten. The
user id and the path are checked before anything is created, and a failed export removes what
it created (never a directory that was there before).
Live rows are read in one REPEATABLE READ snapshot, streamed (memory stays flat).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from powrops.config import Settings
from powrops.db import snapshot
from powrops.errors import ParameterError
from powrops.retention import archival_file, journal
from powrops.retention.archival import index_entries
from powrops.retention.errors import ArchiveValidationError, RetentionError
from powrops.retention.repository import open_archive
from powrops.retention.subject import is_user_id, not_a_user_id, params, present

MANIFEST = "manifest.json"
FORMAT = "powrops-gdpr-export/1"


@dataclass
class ExportResult:
    user_id: int
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {name.removesuffix(".json"): int(f["rows"]) for name, f in self.files.items()}

    def to_dict(self) -> dict[str, Any]:
        """Counts only: safe to print or render (no path, no personal data)."""
        return {"user_id": self.user_id, "rows": self.counts(), "files": len(self.files) + 1}


def check_directory(path: Path) -> Path:
    """``path`` (``~`` expanded) when it is new or an empty directory; ParameterError else."""
    path = path.expanduser().absolute()
    if path.exists():
        if not path.is_dir():
            raise ParameterError(f"export path {path} exists and is not a directory")
        if any(path.iterdir()):
            raise ParameterError(f"export path {path} is not empty: refusing to overwrite it")
    return path


@contextmanager
def export_directory(path: Path) -> Iterator[Path]:
    """The checked export directory, created 0700; if the export fails, what it created goes:
    the folders it made (the new directory and any missing parents), or, for an empty directory
    that was there before, the files written into it (the directory stays)."""
    path = check_directory(path)
    first_new = next((p for p in (*reversed(path.parents), path) if not p.exists()), None)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    try:
        yield path
    except BaseException:
        if first_new is not None:
            shutil.rmtree(first_new, ignore_errors=True)
        else:
            for child in path.iterdir():
                child.unlink(missing_ok=True)
        raise


def _write_array(directory: Path, name: str, rows: Iterable[str]) -> dict[str, Any]:
    """Write rows (JSON texts) as a JSON array into a new 0600 file; rows, bytes, sha256."""
    fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    digest, size, count = hashlib.sha256(), 0, 0
    with os.fdopen(fd, "wb") as handle:

        def put(text: str) -> None:
            nonlocal size
            data = text.encode()
            digest.update(data)
            size += len(data)
            handle.write(data)

        put("[")
        for row in rows:
            put(("\n  " if count == 0 else ",\n  ") + row)
            count += 1
        put("\n]\n")
        handle.flush()
        os.fsync(handle.fileno())
    return {"rows": count, "bytes": size, "sha256": digest.hexdigest()}


def _cursor_rows(conn: psycopg.Connection[Any], query: Any, args: dict[str, Any]) -> Iterable[str]:
    with conn.cursor(name="powrops_gdpr_export") as cur:
        cur.itersize = 2000
        cur.execute(query, args)
        for row in cur:
            yield str(row[0])


def archived_workout_ids(
    conn: psycopg.Connection[Any], settings: Settings, user_id: int, *, restored: bool = False
) -> tuple[list[dict[str, Any]], list[int]]:
    """The user's index entries and the workout ids in their files (each file validated)."""
    entries = list(index_entries(conn, user_id, include_restored=restored))
    ids: list[int] = []
    for entry in entries:
        repo = open_archive(settings, entry["details"]["repository"])
        back = archival_file.read_back(repo, entry["details"]["key"], user_id)
        if back.file_sha256 != entry["sha256"]:
            raise ArchiveValidationError(
                f"archive index entry {entry['id']}: the file's SHA-256 differs from the index"
            )
        ids.extend(back.workout_ids)
    return entries, ids


def _archived_rows(settings: Settings, entries: list[dict[str, Any]], table: str) -> Iterable[str]:
    for entry in entries:
        repo = open_archive(settings, entry["details"]["repository"])
        for name, text in archival_file.read_rows(repo, entry["details"]["key"]):
            if name == table:
                yield text


def export_user(settings: Settings, user_id: int, to: Path) -> ExportResult:
    """Write everything held about ``user_id`` into the new directory ``to``.

    The id and the directory are checked before anything is created; a failed export leaves
    nothing behind (see :func:`export_directory`)."""
    if not is_user_id(user_id):
        raise ParameterError(not_a_user_id(user_id))
    with export_directory(to) as directory:
        result = _export_into(settings, user_id, directory)
    journal.record_run(settings, "gdpr", {"operation": "export", **result.to_dict()})
    return result


def _export_into(settings: Settings, user_id: int, directory: Path) -> ExportResult:
    result = ExportResult(user_id)
    with journal.connect(settings) as conn, snapshot(conn, "30min"):
        entries, archived = archived_workout_ids(conn, settings, user_id)
        live = [
            r[0] for r in conn.execute("SELECT id FROM workouts WHERE user_id = %s", (user_id,))
        ]
        args = params(user_id, live + archived)
        found = conn.execute("SELECT count(*) FROM users WHERE id = %s", (user_id,)).fetchone()
        if not (found and found[0]) and not entries:
            raise RetentionError(f"no user {user_id} and no archived data of that id")
        for holding in present(conn):
            name = f"{holding.name}.json"
            rows = _cursor_rows(conn, holding.select(), args)
            result.files[name] = _write_array(directory, name, rows)
        for table in archival_file.TABLES:
            name = f"archived_{table}.json"
            result.files[name] = _write_array(
                directory, name, _archived_rows(settings, entries, table)
            )
        index_rows = (json.dumps(e, default=str, sort_keys=True) for e in entries)
        result.files["archive_index.json"] = _write_array(
            directory, "archive_index.json", index_rows
        )
    manifest = {
        "format": FORMAT,
        "user_id": user_id,
        "generated_at": datetime.now(UTC).isoformat(),
        "files": result.files,
    }
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    fd = os.open(directory / MANIFEST, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    return result
