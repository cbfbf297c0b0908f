"""The wheel carries the notebooks, runbooks and migrations beside the library.

Metadata lives in pyproject.toml; this only adds the three folders to the built package as
``powrops/bundled/<folder>``, so that an installed powrops finds them without a checkout
(:mod:`powrops.bundle`). A checkout, editable or not, uses its own folders.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

BUNDLED = ("notebooks", "runbooks", "migrations")
SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")


class BuildWithBundle(build_py):
    """``build_py`` that also copies the bundled folders into the built package."""

    def run(self) -> None:
        # build_py only adds to build/lib: a module deleted or renamed in lib/ since the last
        # build would stay in the wheel (and a registry that lists its package would load it).
        shutil.rmtree(Path(self.build_lib) / "powrops", ignore_errors=True)
        super().run()
        here = Path(__file__).resolve().parent
        target = Path(self.build_lib) / "powrops" / "bundled"
        for name in BUNDLED:
            shutil.rmtree(target / name, ignore_errors=True)
            shutil.copytree(here / name, target / name, ignore=SKIP)


setup(cmdclass={"build_py": BuildWithBundle})
