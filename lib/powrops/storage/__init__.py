"""Backup repositories addressed by URL: ``file://`` directories and ``s3://`` buckets.

Open one with :func:`open_repository`; every backend implements :class:`Repository` (see
:mod:`powrops.storage.base` for the contract). Client-side encryption wraps any of them
(:mod:`powrops.storage.crypto`). Importing this package does not import boto3 or cryptography:
``powrops wal push`` goes through here and must start fast.
"""

from __future__ import annotations

from typing import Any

from powrops.storage import local
from powrops.storage.base import ObjectInfo, Repository, validate_key
from powrops.storage.local import FileRepository
from powrops.storage.registry import open_repository, register_scheme, registered_schemes

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


def __getattr__(name: str) -> Any:
    """The S3 backend, loaded on first use (it is not needed for file:// repositories)."""
    if name in ("s3", "S3Options", "S3Repository"):
        import importlib

        module = importlib.import_module("powrops.storage.s3")
        return module if name == "s3" else getattr(module, name)
    raise AttributeError(f"module 'powrops.storage' has no attribute {name!r}")
