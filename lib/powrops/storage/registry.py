"""The registry of URL schemes, and :func:`open_repository`, which picks the backend.

Backends register themselves with :func:`register_scheme`; creating a client (a boto3 session,
a connection) happens on first use, so opening a repository is cheap and does not touch the
network. The built-in backends and client-side encryption are imported when first needed:
``powrops wal push`` opens a ``file://`` repository through here and must start fast.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from powrops.errors import StorageError
from powrops.storage.base import KIND_SCHEMES, Repository, safe_url

if TYPE_CHECKING:
    from powrops.config import Encryption
    from powrops.config import Repository as RepositorySettings


# The registry: URL scheme -> backend class. Filled when powrops.storage is imported.
_SCHEMES: dict[str, type[Repository]] = {}
#: Built-in backends, imported (and so registered) when a URL of their scheme is first opened:
#: a file:// repository never loads the S3 module.
_BUILTIN = {"file": "powrops.storage.local", "s3": "powrops.storage.s3"}


def register_scheme(scheme: str, cls: type[Repository]) -> None:
    """Make ``open_repository`` open URLs of ``scheme`` with ``cls.from_url``."""
    _SCHEMES[scheme.lower()] = cls


def registered_schemes() -> tuple[str, ...]:
    """The URL schemes open_repository understands."""
    return tuple(sorted(set(_SCHEMES) | set(_BUILTIN)))


def url_scheme(url: str) -> str:
    """The scheme of a repository URL, or StorageError naming the URL."""
    if not isinstance(url, str) or "://" not in url:
        raise StorageError(
            f"{safe_url(str(url))!r} is not a repository URL "
            f"(expected one of: {', '.join(s + '://...' for s in registered_schemes())})"
        )
    return url.split("://", 1)[0].lower()


def open_repository(
    url: str,
    settings: RepositorySettings | None = None,
    encryption: Encryption | None = None,
    environ: Mapping[str, str] | None = None,
) -> Repository:
    """The repository at ``url``, configured by ``settings`` and optionally encrypting.

    ``settings`` (the ``[backup.storage.*]`` section) supplies what a URL cannot carry: the
    endpoint, region, credentials and server-side encryption of an S3 or GCS bucket. When
    ``encryption.enabled``, everything written is encrypted on this side before it leaves the
    process (see :mod:`powrops.storage.crypto`). ``environ`` defaults to ``os.environ`` and is
    where an encryption key named by ``key_env`` is looked up.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    scheme = url_scheme(url)
    if scheme not in _SCHEMES and scheme in _BUILTIN:
        importlib.import_module(_BUILTIN[scheme])
    cls = _SCHEMES.get(scheme)
    if cls is None:
        raise StorageError(
            f"unknown repository scheme {scheme!r} in {safe_url(url)} "
            f"(known: {', '.join(registered_schemes())})",
            url=safe_url(url),
        )
    if settings is not None and KIND_SCHEMES[settings.kind] != scheme:
        raise StorageError(
            f"repository {safe_url(url)} does not match its kind {settings.kind!r} "
            f"(a {settings.kind} repository needs a {KIND_SCHEMES[settings.kind]}:// URL)",
            url=safe_url(url),
        )
    return encrypting(cls.from_url(url, settings, env), encryption, env)


def encrypting(
    repository: Repository,
    encryption: Encryption | None,
    environ: Mapping[str, str] | None = None,
) -> Repository:
    """``repository``, wrapped to encrypt what it stores when ``encryption.enabled``."""
    if encryption is None or not encryption.enabled:
        return repository
    from powrops.storage.crypto import EncryptedRepository, load_key

    env: Mapping[str, str] = os.environ if environ is None else environ
    return EncryptedRepository(repository, load_key(encryption, env))
