"""The audit trail: event classes and metadata."""

from __future__ import annotations

from powrops.config.base import (
    Section,
)
from powrops.durations import Duration


class AuditEvents(Section):
    data_modification: bool = True
    access_patterns: bool = True
    system_changes: bool = True


class AuditMetadata(Section):
    timestamp: bool = True
    user_id: bool = True
    action: bool = True
    old_value: bool = True
    new_value: bool = True


class AuditSettings(Section):
    events: AuditEvents = AuditEvents()
    metadata: AuditMetadata = AuditMetadata()
    # audit_log rows older than this are deleted by ``powrops cleanup`` (one year: the
    # strategy's system log retention for security events; "indefinite" keeps them all)
    retention: Duration = Duration.parse("1y")
