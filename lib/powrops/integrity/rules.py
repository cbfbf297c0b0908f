"""Validation rules from ``settings.validation``: one scan per table, counts per rule.

Each rule becomes one or two checks: ``<field>_range`` (a value outside min..max, or not a whole
number for an integer rule) and ``<field>_required`` (a missing value) when the rule says
``required``. Rules on the same table are counted in one scan with ``count(*) FILTER``; sample
ids are fetched only for rules that failed: up to ``KEPT_IDS`` (for the next incremental run
to look at again), five shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import psycopg
from psycopg import sql

from powrops.config import DateRule, NumberRule, ValidationSettings
from powrops.integrity.model import KEPT_IDS, CheckResult, violation

ALL_ROWS = sql.SQL("TRUE")
"""The filter of a check over the whole table (an incremental check passes the rows that
changed: ``powrops.integrity.incremental``)."""

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
    condition: sql.Composable
    what: str
    params: tuple[Any, ...] = ()


RULE_TABLES = {"weight": "workout_sets", "reps": "workout_sets", "date": "workouts"}
"""Where each field of ``validation.workout`` lives."""

OUTSIDE_RANGE = sql.SQL("{col} IS NOT NULL AND ({col} < %s OR {col} > %s)")
"""A number below ``min`` or above ``max``."""

OUTSIDE_RANGE_OR_FRACTION = sql.SQL(
    "{col} IS NOT NULL AND ({col} < %s OR {col} > %s OR {col} <> trunc({col}))"
)
"""An integer rule's value below ``min``, above ``max``, or not a whole number."""

OUTSIDE_DATES = sql.SQL("{col} IS NOT NULL AND ({col} < {low} OR {col} > {high})")
"""A date before ``min`` or after ``max`` (each a parameter, or the server's CURRENT_DATE)."""

MISSING = sql.SQL("{col} IS NULL")
"""A required value left out."""

COUNT_VIOLATIONS = sql.SQL("SELECT {counts} FROM {table} WHERE {within}")
"""One scan of a table (of the rows ``within`` keeps: ``TRUE`` for all), one
``count(*) FILTER (WHERE <condition>)`` per check."""

COUNT_ONE = sql.SQL("count(*) FILTER (WHERE {condition})")

SAMPLE_VIOLATIONS = sql.SQL(
    "SELECT id FROM {table} WHERE ({within}) AND {condition} ORDER BY id + 0 LIMIT %s"
)
"""The smallest violating ids; ``id + 0`` keeps the planner from walking the whole primary
key in order when violations are rare (one scan and a top-N sort instead)."""


def _number(field: str, rule: NumberRule) -> list[RuleCheck]:
    low, high = rule.min, rule.max
    what = f"with {field} outside {low:g}..{high:g}"
    template = OUTSIDE_RANGE
    if rule.type == "integer":
        template = OUTSIDE_RANGE_OR_FRACTION
        what += " or not a whole number"
    condition = template.format(col=sql.Identifier(field))
    checks = [RuleCheck(f"{field}_range", RULE_TABLES[field], field, condition, what, (low, high))]
    if rule.required:
        checks.append(_required(field))
    return checks


def _date(field: str, rule: DateRule, today: date | None) -> list[RuleCheck]:
    bounds: list[sql.Composable] = []
    params, shown = [], []
    for bound in (rule.min, rule.max):
        if bound == "today" and today is None:
            bounds.append(sql.SQL("CURRENT_DATE"))
            shown.append("today")
        else:
            bounds.append(sql.Placeholder())
            params.append(today if bound == "today" else bound)
            shown.append(str(bound))
    condition = OUTSIDE_DATES.format(col=sql.Identifier(field), low=bounds[0], high=bounds[1])
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
        MISSING.format(col=sql.Identifier(field)),
        f"without {field} (required)",
    )


def rule_checks(validation: ValidationSettings, today: date | None = None) -> list[RuleCheck]:
    """Every check the configured rules ask for; ``today`` None means the server's date."""
    w = validation.workout
    return [*_number("weight", w.weight), *_number("reps", w.reps), *_date("date", w.date, today)]


def count_sql(
    table: str, checks: list[RuleCheck], within: sql.Composable = ALL_ROWS
) -> tuple[sql.Composed, tuple[Any, ...]]:
    """One scan of ``table`` (the rows ``within`` keeps) counting the rows that violate each
    check."""
    counts = sql.SQL(", ").join(COUNT_ONE.format(condition=c.condition) for c in checks)
    params = tuple(p for c in checks for p in c.params)
    query = COUNT_VIOLATIONS.format(counts=counts, table=_table(table), within=within)
    return query, params


def _table(name: str) -> sql.Identifier:
    """``public.<name>``."""
    return sql.Identifier("public", name)


def sample_sql(
    check: RuleCheck, within: sql.Composable = ALL_ROWS
) -> tuple[sql.Composed, tuple[Any, ...]]:
    """The query of :data:`SAMPLE_VIOLATIONS` for one check, and its parameters."""
    query = SAMPLE_VIOLATIONS.format(
        table=_table(check.table), condition=check.condition, within=within
    )
    return query, (*check.params, KEPT_IDS)


def run_rules(
    conn: psycopg.Connection[Any],
    validation: ValidationSettings,
    today: date | None = None,
    within: Mapping[str, sql.Composable] | None = None,
) -> list[CheckResult]:
    """Run every rule check; one result per check, in rule order. ``within`` (by table) keeps
    the rows to look at, e.g. those changed since the last check; default: every row."""
    within = within or {}
    checks = rule_checks(validation, today)
    by_table: dict[str, list[RuleCheck]] = {}
    for check in checks:
        by_table.setdefault(check.table, []).append(check)
    counts: dict[str, int] = {}
    for table, group in by_table.items():
        query, params = count_sql(table, group, within.get(table, ALL_ROWS))
        row = conn.execute(query, params).fetchone()
        assert row is not None
        counts.update({c.name: int(n) for c, n in zip(group, row, strict=True)})
    results = []
    for check in checks:
        n = counts[check.name]
        samples = []
        if n:
            query, params = sample_sql(check, within.get(check.table, ALL_ROWS))
            samples = [r[0] for r in conn.execute(query, params)]
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
