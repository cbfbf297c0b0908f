"""Backup repositories addressed by URL: ``file://`` directories and ``s3://`` buckets.

Open one with :func:`open_repository`; every backend implements :class:`Repository` (see
:mod:`powrops.storage.base` for the contract). Client-side encryption wraps any of them
(:mod:`powrops.storage.crypto`). Importing this package does not import boto3 or cryptography:
``powrops wal push`` goes through here and must start fast, so the S3 backend is
:mod:`powrops.storage.s3`, loaded by the registry when an ``s3://`` URL is opened.
"""

from __future__ import annotations

from powrops.storage import local
from powrops.storage.base import ObjectInfo, Repository, validate_key
from powrops.storage.local import FileRepository
from powrops.storage.registry import open_repository, register_scheme, registered_schemes

__all__ = [
    "FileRepository",
    "ObjectInfo",
    "Repository",
    "local",
    "open_repository",
    "register_scheme",
    "registered_schemes",
    "validate_key",
]
