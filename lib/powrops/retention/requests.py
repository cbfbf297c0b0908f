"""A GDPR request carried out: an export (:mod:`powrops.retention.gdpr`) or an erasure
(:mod:`powrops.retention.erase`) of one user, after the runbook's confirmation."""

from __future__ import annotations

from typing import Any

from powrops.config import Settings
from powrops.retention.erase import erase_user
from powrops.retention.gdpr import export_user
from powrops.retention.view import export_path


def carry_out_request(
    settings: Settings, user_id: int, action: str, path: str, proceed: bool
) -> dict[str, Any] | None:
    """Export or erase (only when ``proceed``); counts and ids, never the path."""
    if not proceed:
        return None
    if action == "export":
        return export_user(settings, user_id, export_path(path)).to_dict()
    return erase_user(settings, user_id).to_dict()
