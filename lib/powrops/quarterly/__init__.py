"""The quarterly review: what the evidence kept during a quarter says, item by item.

The evidence is gathered by :mod:`.evidence` into the types of :mod:`.model`; :mod:`.assessment`
grades each checklist item of the strategy and reviews one server or a fleet; :mod:`.sections`
builds the review's sections; :mod:`.view` renders them. This file hands their names on.
"""

from __future__ import annotations

from powrops.quarterly.assessment import (
    CLEANUP_TABLES,
    HEADLINE_KEYS,
    ChecklistItem,
    FleetReview,
    Review,
    checklist,
    fleet,
    freshness,
    gather,
    outcome,
    parse_quarter,
    previous_figures,
    review,
    review_of,
    server_names,
    summary_counts,
)
from powrops.quarterly.model import (
    BackupRun,
    CheckRun,
    Evidence,
    OpsEvent,
    Quarter,
    Repair,
    ReportRun,
    RetentionCount,
    Snapshot,
)
from powrops.quarterly.sections import Section

__all__ = [
    "CLEANUP_TABLES",
    "HEADLINE_KEYS",
    "BackupRun",
    "CheckRun",
    "ChecklistItem",
    "Evidence",
    "FleetReview",
    "OpsEvent",
    "Quarter",
    "Repair",
    "ReportRun",
    "RetentionCount",
    "Review",
    "Section",
    "Snapshot",
    "checklist",
    "fleet",
    "freshness",
    "gather",
    "outcome",
    "parse_quarter",
    "previous_figures",
    "review",
    "review_of",
    "server_names",
    "summary_counts",
]
