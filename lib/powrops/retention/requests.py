"""A GDPR request carried out: an export (:mod:`powrops.retention.gdpr`) or an erasure
(:mod:`powrops.retention.erase`) of one user, after the runbook's confirmation."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from powrops.config import Settings
from powrops.errors import ParameterError
from powrops.findings import Finding, Severity
from powrops.retention.erase import erase_user
from powrops.retention.gdpr import export_user
from powrops.retention.subject import MAX_USER_ID, is_user_id

ACTIONS = ("export", "erase")


def check_request(user_id: Any, action: str) -> int:
    """The user id as an int, or ParameterError; the action must be export or erase."""
    check_action(action)
    return check_user_id(user_id)


def check_action(action: Any) -> str:
    """The request's action, export or erase; ParameterError else."""
    if action not in ACTIONS:
        raise ParameterError(
            f'action must be "export" or "erase" (got {action!r}): set it in the parameters cell'
        )
    return str(action)


def check_user_id(user_id: Any) -> int:
    """The request's subject as an int, or ParameterError (unset, or not a positive id)."""
    if user_id is None or user_id == "":
        raise ParameterError(
            "user_id is not set: a GDPR request names its subject, and there is no default "
            "user. Set user_id = 7 (the user's id) in the parameters cell."
        )
    if isinstance(user_id, str) and user_id.strip().isdigit():  # -p user_id 7 on the CLI
        user_id = int(user_id)
    if not is_user_id(user_id):
        raise ParameterError(
            f"user_id = {user_id!r}: set user_id to the user's id, a positive whole number "
            f"(user_id = 7) of at most {MAX_USER_ID}, in the parameters cell"
        )
    return int(user_id)


def export_path(value: str) -> Path:
    """The export directory: a path, or ``env:NAME`` to read it from the environment (which
    keeps it out of the archived notebook's parameters)."""
    if value.startswith("env:"):
        name = value[4:]
        if not os.environ.get(name):
            raise ParameterError(f"export_path names environment variable {name}, which is unset")
        return Path(os.environ[name])
    if not value:
        raise ParameterError("export_path is required for an export (a new, private directory)")
    return Path(value)


def export_folder(value: str) -> str:
    """Where an export went, as the page may say it: the folder given, or for ``env:NAME``
    the variable's name (the path stays out of the page, as it stayed out of the
    parameters)."""
    if value.startswith("env:"):
        return f"the folder ${value[4:]} names"
    return str(Path(value).expanduser().absolute())


def carry_out_request(
    settings: Settings, user_id: int, action: str, path: str, proceed: bool
) -> dict[str, Any] | None:
    """Export or erase (only when ``proceed``); counts and ids, and for an export where its
    files went (:func:`export_folder`)."""
    if not proceed:
        return None
    if action == "export":
        done = export_user(settings, user_id, export_path(path)).to_dict()
        return {**done, "folder": export_folder(path)}
    return erase_user(settings, user_id).to_dict()


def request_findings(outcome: dict[str, Any] | None) -> list[Finding]:
    if outcome is None:
        return [Finding("gdpr.request", Severity.OK, "planned only; nothing changed")]
    errors = outcome.get("errors") or []
    severity = Severity.WARNING if errors else Severity.OK
    return [Finding("gdpr.request", severity, f"done with {len(errors)} errors")]
