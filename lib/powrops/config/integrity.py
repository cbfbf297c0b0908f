"""Validation rules and consistency checks."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from powrops.config.base import (
    Section,
)
from powrops.config.model import (
    BeforeValidator,
    Field,
    model_validator,
)
from powrops.durations import Duration


class NumberRule(Section):
    type: Literal["decimal", "integer"]
    min: float
    max: float
    required: bool = True

    @model_validator(mode="after")
    def _ordered(self) -> NumberRule:
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        return self


def _date_bound(value: Any) -> Any:
    if isinstance(value, dt.date) or value == "today":
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError('expected a date as YYYY-MM-DD or "today"')


class DateRule(Section):
    type: Literal["date"] = "date"
    min: Annotated[dt.date | Literal["today"], BeforeValidator(_date_bound)]
    max: Annotated[dt.date | Literal["today"], BeforeValidator(_date_bound)]
    required: bool = True

    def bounds(self, today: dt.date | None = None) -> tuple[dt.date, dt.date]:
        today = today or dt.date.today()
        low = today if self.min == "today" else self.min
        high = today if self.max == "today" else self.max
        assert isinstance(low, dt.date) and isinstance(high, dt.date)
        return low, high


class WorkoutValidation(Section):
    weight: NumberRule = NumberRule(type="decimal", min=0, max=1000)
    reps: NumberRule = NumberRule(type="integer", min=1, max=100)
    date: DateRule = DateRule(min=dt.date(2020, 1, 1), max="today")


class ValidationSettings(Section):
    workout: WorkoutValidation = WorkoutValidation()


class ConsistencyChecks(Section):
    referential_integrity: bool = True
    calculated_fields: bool = True
    user_totals: bool = True


class ConsistencyRepair(Section):
    auto_fix: bool = True
    notification: bool = True
    logging: bool = True
    # A class of fix that would change more rows than this stops, changes nothing and says
    # so: that many bad rows is an incident to look at, not a routine repair.
    max_rows: int = Field(default=1000, ge=1)


class ConsistencySettings(Section):
    schedule: Duration = Duration.parse("daily")
    checks: ConsistencyChecks = ConsistencyChecks()
    repair: ConsistencyRepair = ConsistencyRepair()
    statement_timeout: Duration = Duration.parse("15min")
    heapallindexed: bool = False
    # The daily check looks only at what changed since the last one; every check runs in full
    # on this schedule (and on `powrops check integrity --full`).
    full_every: Duration = Duration.parse("7d")
