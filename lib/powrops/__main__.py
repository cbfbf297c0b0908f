"""Entry point of the ``powrops`` command (and ``python -m powrops``).

``wal push``, ``wal fetch`` and ``wal warm`` with ``--spec`` run once per WAL file or restore,
started by the server or a restore, so they are dispatched here before the full command-line
parser (argparse) is even imported.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["wal"] and "--spec" in arguments:
        from powrops.backup.walcli import run_fast

        code = run_fast(arguments)
        if code is not None:
            return code
    from powrops.cli import main as full_main

    return full_main(arguments)


if __name__ == "__main__":
    sys.exit(main())
