"""The configured repositories: primary and secondary, from ``backup.storage``."""

from __future__ import annotations

from powrops.config import Repository as RepositorySettings
from powrops.config import Settings
from powrops.storage.base import Repository, open_repository


def primary_url(settings: Settings) -> str:
    """The primary repository's URL; a local directory under the state dir when unset."""
    url = settings.backup.storage.primary.url
    return url or (settings.state_dir / "backups").as_uri()


def primary(settings: Settings) -> Repository:
    storage = settings.backup.storage
    options = storage.primary if storage.primary.url else None  # the local default
    return open_repository(primary_url(settings), options, storage.encryption)


def secondary(settings: Settings) -> Repository | None:
    storage = settings.backup.storage
    repo: RepositorySettings | None = storage.secondary
    if repo is None or repo.url is None:
        return None
    return open_repository(repo.url, repo, storage.encryption)
