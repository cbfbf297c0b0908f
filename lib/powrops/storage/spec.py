"""What ``powrops wal push`` / ``wal fetch`` need, in a small JSON file read without the settings.

The server runs the archive and restore commands once per WAL file, so they must start fast.
``powrops`` writes the resolved primary repository (URL, options, where the encryption key is:
never the key itself) to ``<state>/archive.json``; the commands read it with the standard
library. Without ``--spec`` they fall back to the full configuration.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from powrops.errors import BackupError
from powrops.storage.base import Repository
from powrops.storage.registry import encrypting, open_repository

if TYPE_CHECKING:
    from powrops.config import Settings

SPEC_FILE = "archive.json"


def primary_url(settings: Settings) -> str:
    """The primary repository's URL; a local directory under the state dir when unset."""
    url = settings.backup.storage.primary.url
    return url or (settings.state_dir / "backups").as_uri()


def primary(settings: Settings) -> Repository:
    """The primary backup repository of ``settings`` (``backup.storage.primary``)."""
    storage = settings.backup.storage
    if storage.primary.url:
        return open_repository(storage.primary.url, storage.primary, storage.encryption)
    return state_repository(settings, "backups")


def state_repository(settings: Settings, name: str) -> Repository:
    """``<state dir>/<name>``: a ``file://`` repository powrops keeps when none is configured
    (encrypted as ``backup.storage.encryption`` says). The first write creates it and, on a
    new configuration, the state directory (0700); the parent of ``state.dir`` must exist."""
    from powrops.storage.local import FileRepository

    repo = FileRepository(settings.state_dir / name, create_below=settings.state_root.parent)
    return encrypting(repo, settings.backup.storage.encryption)


def spec_of(settings: Settings) -> dict[str, Any]:
    """The spec ``settings`` describe (what :func:`write_spec` writes), computed, not written."""
    storage = settings.backup.storage
    return {
        "url": primary_url(settings),
        "repository": storage.primary.model_dump(
            mode="json", exclude={"access_key_id", "secret_access_key"}
        ),
        "has_keys": storage.primary.access_key_id is not None,
        "encryption": storage.encryption.model_dump(mode="json"),
        "config": settings.config_file,
        "server": settings.server,
    }


def write_spec(settings: Settings, path: Path) -> dict[str, Any]:
    """Write the spec for the primary repository of ``settings`` to ``path`` (mode 0644)."""
    spec = spec_of(settings)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(spec, indent=2) + "\n")
    os.chmod(tmp, 0o644)
    tmp.replace(path)
    return spec


#: What decides where WAL goes and how it is stored: a spec that differs from the
#: configuration in one of these sends WAL somewhere the configuration does not look.
REPOSITORY_KEYS = ("url", "repository", "has_keys", "encryption")


def read_spec(path: Path) -> dict[str, Any] | None:
    """The spec at ``path``; None when there is none; BackupError when it is unreadable."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BackupError(f"cannot read the archive spec {path}: {exc}") from exc
    try:
        spec: dict[str, Any] = json.loads(text)
    except ValueError as exc:
        raise BackupError(f"the archive spec {path} is not JSON: {exc}") from exc
    return spec


def spec_differences(on_disk: dict[str, Any], expected: dict[str, Any]) -> list[str]:
    """The repository keys (:data:`REPOSITORY_KEYS`) in which two specs disagree."""
    return [key for key in REPOSITORY_KEYS if not _same(key, on_disk.get(key), expected.get(key))]


def _same(key: str, written: Any, configured: Any) -> bool:
    """Equal values, or two ``file://`` URLs of one folder (spelt through a symlink)."""
    if written == configured:
        return True
    urls = (written, configured)
    if key != "url" or not all(isinstance(u, str) and u.startswith("file://") for u in urls):
        return False
    from powrops.storage.local import path_from_url

    return os.path.realpath(path_from_url(written)) == os.path.realpath(path_from_url(configured))


def open_from_spec(path: str | Path) -> Repository:
    """The repository a spec file describes; file:// without pydantic or boto3."""
    try:
        spec: dict[str, Any] = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"cannot read the archive spec {path}: {exc}") from exc
    url = str(spec["url"])
    encryption = spec.get("encryption") or {}
    if url.startswith("file://") and not spec.get("has_keys"):
        from powrops.storage.local import FileRepository, path_from_url

        repo: Repository = FileRepository(path_from_url(url))
        if encryption.get("enabled"):
            from types import SimpleNamespace

            from powrops.storage.crypto import EncryptedRepository, load_key

            key_source = SimpleNamespace(
                key_file=encryption.get("key_file"), key_env=encryption.get("key_env")
            )
            repo = EncryptedRepository(repo, load_key(key_source))  # type: ignore[arg-type]
        return repo
    return _open_with_config(spec)


def _open_with_config(spec: dict[str, Any]) -> Repository:
    """Object stores and credentials: build the settings models (slower, still no pandas)."""
    config_file = spec.get("config")
    if config_file:
        from powrops.config import load_settings

        return primary(load_settings(config_file, server=spec.get("server") or None))
    from powrops.config import Encryption
    from powrops.config import Repository as RepositorySettings

    return open_repository(
        str(spec["url"]),
        RepositorySettings.model_validate(spec["repository"]),
        Encryption.model_validate(spec.get("encryption") or {}),
    )
