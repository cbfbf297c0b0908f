"""powrops: the data-management toolkit for POWR's PostgreSQL database."""

from __future__ import annotations

import os

# powrops uses no pydantic plugins; scanning every installed package's entry points for them
# costs a noticeable part of each command's start (WAL archiving runs one per segment). Set
# here, before any powrops module can import pydantic.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

__version__ = "0.1.0"
