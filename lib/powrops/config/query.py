"""Query pagination and caching."""

from __future__ import annotations

from typing import Literal

from powrops.config.base import (
    Section,
)
from powrops.config.model import (
    Field,
    model_validator,
)
from powrops.durations import Duration


class Pagination(Section):
    default_limit: int = Field(default=20, ge=1)
    max_limit: int = Field(default=100, ge=1)
    use_keyset: bool = True

    @model_validator(mode="after")
    def _limits(self) -> Pagination:
        if self.default_limit > self.max_limit:
            raise ValueError("default_limit is greater than max_limit")
        return self


class Caching(Section):
    strategy: Literal["write-through", "write-back", "write-around"] = "write-through"
    ttl: Duration = Duration.parse("1h")
    invalidation: Literal["selective", "full"] = "selective"


class QuerySettings(Section):
    pagination: Pagination = Pagination()
    caching: Caching = Caching()
