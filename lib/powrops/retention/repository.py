"""The archive repository: where archive files go, and how to open it.

``archival.repository`` is any repository URL the storage registry understands (``file://``,
``s3://``). An ``s3://`` archive uses the connection settings (endpoint, region, credentials,
server-side encryption) of the backup repository of kind s3/gcs in ``backup.storage`` (the
primary first), so one set of credentials serves both. Client-side encryption follows
``backup.storage.encryption``. Unset, archives go to ``<state dir>/archive`` (a ``file://``
repository beside the embedded cluster) - set it to durable storage in production.
"""

from __future__ import annotations

from powrops.backup.repos import connection_for
from powrops.config import Settings
from powrops.storage.base import Repository
from powrops.storage.registry import open_repository
from powrops.storage.spec import state_repository

PREFIX = "archive/users"


def archive_url(settings: Settings) -> str:
    """The archive repository's URL (the default under the state dir when unset)."""
    return settings.archival.repository or (settings.state_dir / "archive").as_uri()


def open_archive(settings: Settings, url: str | None = None) -> Repository:
    """The archive repository (or the one at ``url``, e.g. from an index entry).

    Opening creates nothing: the first write creates a ``file://`` archive's directory (and,
    for the default, the state directory); a configured one whose parent is missing (a file
    system not mounted) is refused then, naming the path.
    """
    if url is None and settings.archival.repository is None:
        return state_repository(settings, "archive")
    url = url or archive_url(settings)
    return open_repository(url, connection_for(settings, url), settings.backup.storage.encryption)


def user_prefix(user_id: int) -> str:
    return f"{PREFIX}/{user_id}/"
