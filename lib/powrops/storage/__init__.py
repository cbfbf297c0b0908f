"""Backup repositories addressed by URL: ``file://`` directories and ``s3://`` buckets.

Open one with :func:`open_repository`; every backend implements :class:`Repository` (see
:mod:`powrops.storage.base` for the contract). Client-side encryption wraps any of them
(:mod:`powrops.storage.crypto`). Importing this package does not import boto3 or cryptography:
``powrops wal push`` goes through here and must start fast.
"""

from __future__ import annotations

from powrops.storage import local, s3
from powrops.storage.base import (
    ObjectInfo,
    Repository,
    open_repository,
    register_scheme,
    registered_schemes,
    validate_key,
)
from powrops.storage.local import FileRepository
from powrops.storage.s3 import S3Options, S3Repository

__all__ = [
    "FileRepository",
    "ObjectInfo",
    "Repository",
    "S3Options",
    "S3Repository",
    "local",
    "open_repository",
    "register_scheme",
    "registered_schemes",
    "s3",
    "validate_key",
]
