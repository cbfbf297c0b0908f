"""Errors of retention, archival, cleanup and GDPR requests (under :class:`PowropsError`)."""

from __future__ import annotations

from powrops.errors import EXIT_CRITICAL, PowropsError


class RetentionError(PowropsError):
    """A retention, archival, cleanup or GDPR operation could not be carried out."""


class ArchiveValidationError(RetentionError):
    """An archive file read back does not match the live rows it was written from.

    The run stops and the live rows stay where they are; the file is left unindexed for
    inspection.
    """

    exit_code = EXIT_CRITICAL


class RestoreConflict(RetentionError):
    """Archived rows cannot be restored because rows with their ids are live again."""
