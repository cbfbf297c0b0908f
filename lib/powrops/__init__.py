"""powrops: the data-management toolkit for POWR's PostgreSQL database."""

from __future__ import annotations

__version__ = "0.1.0"
