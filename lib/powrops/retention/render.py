"""Plain-text tables for the retention commands (rendering only)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from powrops.format import human_value


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows of equal keys as an aligned text table; "(none)" for no rows. Each value as
    ``format.human_value`` shows it for its column (times in UTC, sizes, counts, words)."""
    if not rows:
        return "(none)"
    header = list(rows[0])
    cells = [[_text(h, row.get(h)) for h in header] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def _text(column: str, value: Any) -> str:
    return human_value(column.replace(" ", "_"), value)
