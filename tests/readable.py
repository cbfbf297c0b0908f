"""What a reader must never meet on a page or in CLI text: the machine values the formatting
layer (``powrops.format``) exists to translate. Shared by the index, report and browser tests."""

from __future__ import annotations

import re

#: (what it is, the pattern that finds it)
MACHINE_VALUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("exponent notation", re.compile(r"(?<![\w.])\d+(?:\.\d+)?e[+-]\d+(?!\d)")),
    ("ISO timestamp", re.compile(r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")),
    ("fractional seconds", re.compile(r"\b\d{2}:\d{2}:\d{2}\.\d{3,}")),
    ("Python literal", re.compile(r"(?<![\w'\"-])(?:True|False|None)(?![\w'\"-])")),
    ("datetime repr", re.compile(r"datetime\.(?:datetime|date|timedelta)\(")),
    ("nested list repr", re.compile(r"\[\[")),
    ("dict repr", re.compile(r"\{'")),
    ("notebook prompt", re.compile(r"\bOut\[\d*\]")),
    ("stray record line", re.compile(r"Result recorded")),
)


def machine_values(text: str) -> list[str]:
    """Every machine value in ``text``, as 'what: excerpt' (empty when the text reads well)."""
    found = []
    for what, pattern in MACHINE_VALUES:
        for match in pattern.finditer(text):
            start = max(match.start() - 30, 0)
            found.append(f"{what}: ...{text[start : match.end() + 30]}...")
    return found
