"""Names and the base class every settings module shares."""

from __future__ import annotations

from pydantic import (
    BaseModel,
    ConfigDict,
)

ENV_PREFIX = "POWROPS__"
ENV_SHORTCUTS = {
    "POWROPS_DATABASE_URL": ("database", "url"),
    "POWROPS_DATABASE_ROLE": ("database", "role"),
    "POWROPS_STATE_DIR": ("state", "dir"),
    "POWROPS_REPORTS_DIR": ("reports", "dir"),
}
DEFAULT_FILE = "powrops.toml"
#: The server a command acts on when ``--server`` is not given (see :func:`choose_server`).
SERVER_ENV = "POWROPS_SERVER"
#: The one server of a configuration without ``[servers.*]``: it keeps the unprefixed paths.
DEFAULT_SERVER = "default"


class Section(BaseModel):
    """Base of every settings section: strict about unknown keys, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
