"""Where powrops finds its notebooks, runbooks and migrations.

A checkout uses its own folders: ``POWROPS_PROJECT_ROOT`` when set, else the checkout powrops
is imported from (the folder above ``lib/`` holding ``notebooks/``, ``runbooks/`` and
``migrations/``). An installed wheel carries copies of the three in ``powrops/bundled/``
(see ``setup.py``) and uses those: no checkout is needed on a database host.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import powrops

#: Names a checkout's root explicitly (a checkout elsewhere than the imported package).
CHECKOUT_ENV = "POWROPS_PROJECT_ROOT"
Folder = Literal["notebooks", "runbooks", "migrations"]
FOLDERS: tuple[Folder, ...] = ("notebooks", "runbooks", "migrations")
PACKAGE = Path(powrops.__file__).resolve().parent


def checkout() -> Path | None:
    """The checkout whose folders powrops uses, or None for an installed package."""
    configured = os.environ.get(CHECKOUT_ENV)
    if configured:
        return Path(configured).resolve()
    root = PACKAGE.parents[1]
    return root if all((root / name).is_dir() for name in FOLDERS) else None


def folder(name: Folder) -> Path:
    """The folder ``name`` of the checkout, else the copy installed with the package."""
    root = checkout()
    return root / name if root is not None else PACKAGE / "bundled" / name
