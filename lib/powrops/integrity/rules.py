"""Validation rules from ``settings.validation``: one scan per table, counts per rule.

Each rule becomes one or two checks: ``<field>_range`` (a value outside min..max, or not a whole
number for an integer rule) and ``<field>_required`` (a missing value) when the rule says
``required``. Rules on the same table are counted in one scan with ``count(*) FILTER``; sample
ids are fetched only for rules that failed, five at most.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg
from psycopg import sql

from powrops.config import DateRule, NumberRule, ValidationSettings
from powrops.integrity.model import SAMPLE_SIZE, CheckResult, violation

ADVICE = (
    "the rule is checked in data, not enforced by the schema: find the writer of these rows "
    "(audit trail: powrops audit history TABLE ID) and correct them by hand"
)


@dataclass(frozen=True)
class RuleCheck:
    """One check of one rule: a WHERE condition on one column of one table."""

    name: str
    table: str
    column: str
    condition: str
    what: str
    params: tuple[Any, ...] = ()


RULE_TABLES = {"weight": "workout_sets", "reps": "workout_sets", "date": "workouts"}
"""Where each field of ``validation.workout`` lives."""


def _number(field: str, rule: NumberRule) -> list[RuleCheck]:
    col = sql.Identifier(field).as_string(None)
    low, high = rule.min, rule.max
    condition = f"{col} IS NOT NULL AND ({col} < %s OR {col} > %s"
    what = f"with {field} outside {low:g}..{high:g}"
    if rule.type == "integer":
        condition += f" OR {col} <> trunc({col})"
        what += " or not a whole number"
    checks = [
        RuleCheck(f"{field}_range", RULE_TABLES[field], field, condition + ")", what, (low, high))
    ]
    if rule.required:
        checks.append(_required(field))
    return checks


def _date(field: str, rule: DateRule, today: date | None) -> list[RuleCheck]:
    col = sql.Identifier(field).as_string(None)
    parts, params, shown = [], [], []
    for bound, op in ((rule.min, "<"), (rule.max, ">")):
        if bound == "today" and today is None:
            parts.append(f"{col} {op} CURRENT_DATE")
            shown.append("today")
        else:
            value = today if bound == "today" else bound
            parts.append(f"{col} {op} %s")
            params.append(value)
            shown.append(str(bound))
    condition = f"{col} IS NOT NULL AND ({' OR '.join(parts)})"
    what = f"with {field} outside {shown[0]}..{shown[1]}"
    checks = [
        RuleCheck(f"{field}_range", RULE_TABLES[field], field, condition, what, tuple(params))
    ]
    if rule.required:
        checks.append(_required(field))
    return checks


def _required(field: str) -> RuleCheck:
    return RuleCheck(
        f"{field}_required",
        RULE_TABLES[field],
        field,
        f'"{field}" IS NULL',
        f"without {field} (required)",
    )


def rule_checks(validation: ValidationSettings, today: date | None = None) -> list[RuleCheck]:
    """Every check the configured rules ask for; ``today`` None means the server's date."""
    w = validation.workout
    return [*_number("weight", w.weight), *_number("reps", w.reps), *_date("date", w.date, today)]


def count_sql(table: str, checks: list[RuleCheck]) -> tuple[str, tuple[Any, ...]]:
    """One scan of ``table`` counting the rows that violate each check."""
    columns = ", ".join(f"count(*) FILTER (WHERE {c.condition})" for c in checks)
    params = tuple(p for c in checks for p in c.params)
    return f"SELECT {columns} FROM {_table(table)}", params


def _table(name: str) -> str:
    """``public.<name>``, quoted by psycopg."""
    return sql.Identifier("public", name).as_string(None)


def sample_sql(check: RuleCheck) -> str:
    """The smallest violating ids; ``id + 0`` keeps the planner from walking the whole primary
    key in order when violations are rare (one scan and a top-N sort instead)."""
    return (
        f"SELECT id FROM {_table(check.table)} WHERE {check.condition} "
        f"ORDER BY id + 0 LIMIT {SAMPLE_SIZE}"
    )


def run_rules(
    conn: psycopg.Connection[Any], validation: ValidationSettings, today: date | None = None
) -> list[CheckResult]:
    """Run every rule check; one result per check, in rule order."""
    checks = rule_checks(validation, today)
    by_table: dict[str, list[RuleCheck]] = {}
    for check in checks:
        by_table.setdefault(check.table, []).append(check)
    counts: dict[str, int] = {}
    for table, group in by_table.items():
        sql, params = count_sql(table, group)
        row = conn.execute(sql, params).fetchone()
        assert row is not None
        counts.update({c.name: int(n) for c, n in zip(group, row, strict=True)})
    results = []
    for check in checks:
        n = counts[check.name]
        samples = [r[0] for r in conn.execute(sample_sql(check), check.params)] if n else []
        results.append(
            violation(
                check.name,
                "validation",
                check.table,
                n,
                sorted(samples),
                check.what,
                advice=ADVICE,
                column=check.column,
            )
        )
    return results
