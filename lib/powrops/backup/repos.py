"""The configured repositories: primary and secondary, from ``backup.storage``.

Other repositories powrops writes to (the data archive, the report archive) are given by URL
only; :func:`connection_for` supplies how to reach them.
"""

from __future__ import annotations

from powrops.config import Repository as RepositorySettings
from powrops.config import Settings
from powrops.storage.base import Repository
from powrops.storage.registry import open_repository, url_scheme
from powrops.storage.spec import primary, primary_url

__all__ = ["connection_for", "primary", "primary_url", "secondary"]


def secondary(settings: Settings) -> Repository | None:
    storage = settings.backup.storage
    repo: RepositorySettings | None = storage.secondary
    if repo is None or repo.url is None:
        return None
    return open_repository(repo.url, repo, storage.encryption)


def connection_for(
    settings: Settings, url: str, explicit: RepositorySettings | None = None
) -> RepositorySettings | None:
    """How to reach the repository at ``url``: ``explicit`` when configured, else, for an
    ``s3://`` URL, the endpoint, region, credentials and server-side encryption of the backup
    repository of kind s3/gcs (the primary first), so one set of credentials serves all."""
    if explicit is not None:
        return explicit.model_copy(update={"url": url})
    if url_scheme(url) != "s3":
        return None
    storage = settings.backup.storage
    for repo in (storage.primary, storage.secondary):
        if repo is not None and repo.kind in ("s3", "gcs") and repo.url:
            return repo.model_copy(update={"url": url})
    return None
