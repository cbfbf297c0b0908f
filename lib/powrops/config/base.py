"""Names and the base class every settings module shares."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from powrops.config.model import (
    Model,
    ValidationInfo,
)

ENV_PREFIX = "POWROPS__"
ENV_SHORTCUTS = {
    "POWROPS_DATABASE_URL": ("database", "url"),
    "POWROPS_DATABASE_ROLE": ("database", "role"),
    "POWROPS_STATE_DIR": ("state", "dir"),
    "POWROPS_REPORTS_DIR": ("reports", "dir"),
}
DEFAULT_FILE = "powrops.toml"
#: The config file to read (what ``--config`` gives on the command line).
CONFIG_ENV = "POWROPS_CONFIG"
#: Set by powrops for the processes it starts when it loaded no file: relative paths resolve
#: against this folder and no ``powrops.toml`` is searched for (the defaults, explicitly).
BASE_DIR_ENV = "POWROPS_BASE_DIR"
#: The server a command acts on when ``--server`` is not given (see :func:`choose_server`).
SERVER_ENV = "POWROPS_SERVER"
#: The one server of a configuration without ``[servers.*]``: it keeps the unprefixed paths.
DEFAULT_SERVER = "default"


class Section(Model):
    """Base of every settings section: strict about unknown keys, immutable, its defaults
    validated as any value (:class:`~powrops.config.model.Model`)."""


def config_folder(info: ValidationInfo) -> Path | None:
    """The folder relative paths resolve against while validating: the configuration file's
    (else the project root), given by :func:`powrops.config.validate`; None for settings built
    in code, whose relative paths stay as given."""
    context = info.context
    folder = context.get("base_dir") if isinstance(context, dict) else None
    return Path(folder) if folder else None


def absolute_path(path: str, info: ValidationInfo) -> str:
    """``path`` resolved against the configuration's folder; absolute and ``~`` paths as is."""
    folder = config_folder(info)
    if folder is None or path.startswith("~") or os.path.isabs(path):
        return path
    return os.path.abspath(folder / path)


def absolute_file_url(url: str, info: ValidationInfo) -> str:
    """A relative ``file://`` URL resolved against the configuration's folder; others as is.

    ``file://relrepo`` and ``file://./relrepo`` name ``<folder>/relrepo`` (the first path part
    sits where a URL's host would be); ``file:///srv/powr`` and ``file://localhost/srv/powr``
    are absolute already. Written absolute, the URL means the same folder to the server's
    archive command (run in the data directory) and to a command run anywhere else.
    """
    parts = urlsplit(url)
    host = parts.netloc
    if parts.scheme != "file" or host in ("", "localhost") or "@" in host:
        return url  # not file://, already absolute, or malformed (the storage layer says why)
    if parts.query or parts.fragment:
        return url
    resolved = absolute_path(unquote(host) + unquote(parts.path), info)
    return Path(resolved).as_uri() if os.path.isabs(resolved) else url
