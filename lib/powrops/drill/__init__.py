"""Recovery drills: the strategy's recovery plan run against a scratch target with measured RTO
and RPO (``run``), and what a notebook shows of it (``view``)."""

from __future__ import annotations

from powrops.drill.run import (
    LOGIN_ROLES as LOGIN_ROLES,
)
from powrops.drill.run import (
    SMOKE_QUERIES as SMOKE_QUERIES,
)
from powrops.drill.run import (
    Drill as Drill,
)
from powrops.drill.run import (
    DrillResult as DrillResult,
)
from powrops.drill.run import (
    DrillStep as DrillStep,
)
from powrops.drill.run import (
    Echo as Echo,
)
from powrops.drill.run import (
    RestoredChecks as RestoredChecks,
)
from powrops.drill.run import (
    drill_findings as drill_findings,
)
from powrops.drill.run import (
    run_drill as run_drill,
)
from powrops.drill.run import (
    table_counts as table_counts,
)
