"""Where a configured server's ``archive_command`` sends WAL, against this configuration.

The embedded cluster's command reads the archive spec powrops writes, which
``pg/embedded.py``'s ``archive_spec_findings`` compares. A server of one's own runs the command
its DBA wrote, ``powrops --config FILE wal push %p`` (or ``--spec FILE``): this reads which
configuration that command loads and whether its primary repository is this configuration's,
the one ``verify``, ``restore`` and the drill read. It reads files only, and changes nothing.
"""

from __future__ import annotations

import itertools
import os
import shlex
from pathlib import Path

from powrops.config import Settings, load_settings
from powrops.errors import BackupError, ConfigError
from powrops.findings import Finding, Severity
from powrops.storage.spec import read_spec, spec_differences, spec_of

CHECK = "archive_target"


def archive_command_findings(command: str, settings: Settings) -> list[Finding]:
    """A finding on the repository ``command`` (the server's ``archive_command``) archives
    into; none for the embedded cluster (its spec is checked) or another tool's command."""
    if settings.database.url is None:
        return []
    try:
        words = shlex.split(command)
    except ValueError:
        return []
    if ("wal", "push") not in itertools.pairwise(words):
        return []
    expected = spec_of(settings)
    spec = _option(words, "--spec")
    named = _option(words, "--config", "-c")
    if spec is not None:
        return [_against_spec(Path(spec), expected)]
    if named is None:
        return [
            Finding(
                CHECK,
                Severity.WARNING,
                "archive_command names no configuration (--config or --spec): unless the "
                "server's environment sets POWROPS_CONFIG, `powrops wal push` finds none in the "
                f"data directory it runs in, not this configuration's primary {expected['url']}",
                value=command,
                expected=f"powrops --config {settings.config_file or 'FILE'} wal push %p",
            )
        ]
    if settings.config_file and _same_file(named, settings.config_file):
        return [_archives_here(expected["url"], f"the configuration {named}")]
    try:
        other = load_settings(named, environ={}, server=_option(words, "--server"))
    except ConfigError as exc:
        return [
            Finding(
                CHECK,
                Severity.UNKNOWN,
                f"archive_command loads {named}, which cannot be compared with this "
                f"configuration: {exc.message}",
                value=command,
                expected=f"a configuration whose primary repository is {expected['url']}",
            )
        ]
    return [_compared(spec_of(other), expected, f"the configuration {named}")]


def _against_spec(path: Path, expected: dict[str, object]) -> Finding:
    try:
        on_disk = read_spec(path)
    except BackupError as exc:
        return Finding(CHECK, Severity.UNKNOWN, str(exc), object=str(path))
    if on_disk is None:
        return Finding(
            CHECK,
            Severity.CRITICAL,
            f"archive_command reads the archive spec {path}, which does not exist: every WAL "
            "segment fails to archive",
            object=str(path),
            expected=f"a spec naming {expected['url']}",
        )
    return _compared(on_disk, expected, f"the archive spec {path}")


def _compared(found: dict[str, object], expected: dict[str, object], source: str) -> Finding:
    differ = spec_differences(found, expected)
    if not differ:
        return _archives_here(expected["url"], source)
    return Finding(
        CHECK,
        Severity.CRITICAL,
        f"the server archives WAL to {found.get('url')} ({source}), not to this "
        f"configuration's primary repository {expected['url']}: its backups cannot be "
        f"recovered past their end from here (differs in {', '.join(differ)})",
        value=found.get("url"),
        expected=expected["url"],
        advice="name this configuration in archive_command, or run powrops with the one it names",
    )


def _archives_here(url: object, source: str) -> Finding:
    return Finding(
        CHECK, Severity.OK, f"WAL is archived to this configuration's primary {url} ({source})"
    )


def _option(words: list[str], *flags: str) -> str | None:
    """The value of the first of ``flags`` in ``words`` (``--flag VALUE`` or ``--flag=VALUE``)."""
    for at, word in enumerate(words):
        for flag in flags:
            if word == flag and at + 1 < len(words):
                return words[at + 1]
            if flag.startswith("--") and word.startswith(flag + "="):
                return word[len(flag) + 1 :]
    return None


def _same_file(a: str, b: str) -> bool:
    return os.path.realpath(os.path.abspath(a)) == os.path.realpath(os.path.abspath(b))
