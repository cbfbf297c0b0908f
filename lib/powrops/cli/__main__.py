"""``python -m powrops.cli``: the full command line.

``python -m powrops`` takes the fast WAL path first."""

from __future__ import annotations

import sys

from powrops.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
