"""The repository contract every storage backend implements, and the registry of URL schemes.

A repository is a flat namespace of objects addressed by keys: ``/``-separated relative paths
such as ``backups/20261126T061500F/base.tar.zst``. Backends differ in where the bytes live
(``file://`` a local directory, ``s3://`` a bucket on any S3-compatible service), not in what a
caller can rely on:

- a write is atomic: an object appears complete under its key, or not at all;
- reads of a missing key raise :class:`~powrops.errors.ObjectNotFound`; every other failure is a
  :class:`~powrops.errors.StorageError` whose message names the repository (never credentials);
- listings are recursive and sorted by key (Python string order, which is also S3's UTF-8 byte
  order).

:func:`open_repository` picks the backend from the URL's scheme. Backends register themselves
with :func:`register_scheme`; creating a client (a boto3 session, a connection) happens on first
use, so opening a repository is cheap and does not touch the network.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, BinaryIO
from urllib.parse import urlsplit, urlunsplit

from powrops.errors import StorageError

if TYPE_CHECKING:
    from powrops.config import Encryption
    from powrops.config import Repository as RepositorySettings

#: Part of the name of a file:// write in progress; no key may contain it.
TEMP_MARKER = ".powrops-tmp."
#: S3's limit on the length of a key, in UTF-8 bytes (prefix included).
MAX_KEY_BYTES = 1024
#: Which URL scheme each configured repository kind uses.
KIND_SCHEMES = {"file": "file", "s3": "s3", "gcs": "s3"}


@dataclass(frozen=True)
class ObjectInfo:
    """One stored object: its key, its stored size in bytes and when it was last written."""

    key: str
    size: int
    mtime: datetime | None


def _check_parts(text: str, what: str, parts: Iterable[str]) -> None:
    for part in parts:
        if part in ("", ".", ".."):
            raise StorageError(
                f"invalid {what} {text!r}: empty, '.' and '..' path parts are not allowed"
            )
        if TEMP_MARKER in part:
            raise StorageError(f"invalid {what} {text!r}: {TEMP_MARKER!r} is reserved")


def _check_text(text: object, what: str) -> str:
    if not isinstance(text, str):
        raise StorageError(f"invalid {what} {text!r}: expected a string")
    if text.startswith("/"):
        raise StorageError(f"invalid {what} {text!r}: must be relative (no leading '/')")
    if "\\" in text or "\x00" in text:
        raise StorageError(f"invalid {what} {text!r}: backslashes and NUL are not allowed")
    if len(text.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise StorageError(f"invalid {what} {text[:40]!r}...: longer than {MAX_KEY_BYTES} bytes")
    return text


def validate_key(key: object) -> str:
    """The key itself when it is a valid object key, else StorageError saying why."""
    text = _check_text(key, "key")
    if not text:
        raise StorageError("invalid key '': a key must not be empty")
    _check_parts(text, "key", text.split("/"))
    return text


def validate_prefix(prefix: object) -> str:
    """A listing prefix: like a key, but may be empty, end in '/' or end in a partial name."""
    text = _check_text(prefix, "prefix")
    if text:
        parts = text.split("/")
        _check_parts(text, "prefix", parts[:-1])
        if parts[-1] in (".", ".."):
            raise StorageError(f"invalid prefix {text!r}: '.' and '..' are not allowed")
    return text


def safe_url(url: str) -> str:
    """The URL with any user name or password replaced by ``***``, fit for messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc="***@" + host))


class Repository(ABC):
    """A place that stores objects under keys; the contract every backend implements.

    ``url`` identifies the repository without credentials and is safe to print.
    """

    url: str

    @classmethod
    def from_url(
        cls,
        url: str,
        settings: RepositorySettings | None,
        environ: Mapping[str, str],
    ) -> Repository:
        """The repository a URL of this backend's scheme names (used by open_repository)."""
        raise StorageError(f"{cls.__name__} cannot be opened from a URL ({safe_url(url)})")

    def describe(self, key: str) -> str:
        """The key's full location, for messages."""
        return f"{self.url.rstrip('/')}/{key}"

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, *, if_absent: bool = False) -> ObjectInfo:
        """Store ``data`` under ``key`` atomically.

        With ``if_absent`` an existing object is never replaced: ObjectExists is raised instead.
        """

    @abstractmethod
    def open_write(self, key: str) -> AbstractContextManager[BinaryIO]:
        """A streaming writer; the object appears only when the with-block exits cleanly.

        An exception inside the block (or a crash) leaves nothing under ``key`` (an existing
        object stays as it was).
        """

    def get_bytes(self, key: str) -> bytes:
        """The whole object; ObjectNotFound when it does not exist."""
        with self.open_read(key) as stream:
            return stream.read()

    @abstractmethod
    def open_read(self, key: str) -> AbstractContextManager[BinaryIO]:
        """A streaming reader; ObjectNotFound when the object does not exist."""

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo | None:
        """The object's size and time, or None when it does not exist."""

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        return self.stat(key) is not None

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``, recursively, sorted by key."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; a missing key is not an error."""

    def delete_many(self, keys: Iterable[str]) -> None:
        """Remove several objects; missing keys are not an error."""
        for key in keys:
            self.delete(key)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


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
        import importlib

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
    repository = cls.from_url(url, settings, env)
    if encryption is not None and encryption.enabled:
        from powrops.storage.crypto import EncryptedRepository, load_key

        repository = EncryptedRepository(repository, load_key(encryption, env))
    return repository
