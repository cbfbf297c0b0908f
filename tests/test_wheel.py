"""powrops installed from its wheel, as on a database host: no checkout, no
POWROPS_PROJECT_ROOT. The wheel is built from this checkout, installed into a new virtualenv
outside it, and run in an empty folder: ``powrops demo``, then a report."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = [pytest.mark.pg, pytest.mark.slow]


def _run(args: list[str], cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWROPS", "VIRTUAL_ENV"))}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                  "-q", "-w", str(out), str(REPO)], cwd=out)  # fmt: skip
    assert built.returncode == 0, built.stderr
    [path] = out.glob("powrops-*.whl")
    return path


def test_the_wheel_carries_notebooks_runbooks_and_migrations(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("notebooks", "runbooks"):
        expected = {p.name for p in (REPO / folder).glob("*.ipynb")}
        found = {Path(n).name for n in names if n.startswith(f"powrops/bundled/{folder}/")}
        assert expected and found == expected
    assert "powrops/bundled/migrations/env.py" in names
    revisions = {p.name for p in (REPO / "migrations" / "versions").glob("*.py")}
    assert revisions <= {Path(n).name for n in names if "/bundled/migrations/versions/" in n}


@pytest.fixture
def host() -> Iterator[Path]:
    """A folder a database host's PostgreSQL OS user can read, as /opt is."""
    path = Path(tempfile.mkdtemp(prefix="powrops-wheel-", dir="/tmp"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_installed_from_the_wheel_it_runs_the_demo_and_a_report(wheel: Path, host: Path) -> None:
    tmp_path = host
    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path).returncode == 0
    pip = _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
               cwd=tmp_path)  # fmt: skip
    assert pip.returncode == 0, pip.stderr[-2000:]
    site = tmp_path / "site"
    site.mkdir()
    powrops = str(venv / "bin" / "powrops")
    try:
        demo = _run([powrops, "demo"], cwd=site)
        assert demo.returncode in (0, 1, 2), demo.stdout[-2000:] + demo.stderr[-2000:]
        assert "Traceback" not in demo.stderr and (site / "reports" / "index.html").is_file()
        report = _run([powrops, "report", "run", "readiness_report"], cwd=site)
        assert report.returncode in (0, 1, 2), report.stderr[-2000:]
        [result] = sorted((site / "reports" / "readiness_report").glob("*/result.json"))[-1:]
        recorded = json.loads(result.read_text())
        assert recorded["status"] in ("OK", "WARNING", "CRITICAL")
        assert str(REPO) not in result.read_text()
    finally:
        _run([powrops, "db", "stop"], cwd=site, timeout=120)


def test_a_module_removed_from_the_checkout_leaves_the_next_wheel(tmp_path: Path) -> None:
    """pip builds a checkout's wheel in place, through ``build/``: a module deleted or renamed
    since the last build must not ride along in the next wheel (``cli/registry.py`` lists its
    package and would load a stale command module on the host)."""
    checkout = tmp_path / "checkout"
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("lib", "notebooks", "runbooks", "migrations"):
        shutil.copytree(REPO / name, checkout / name, ignore=skip)
    for name in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, checkout / name)
    stale = checkout / "lib" / "powrops" / "cli" / "retired.py"
    stale.write_text('"""A command module deleted after the first build."""\n')

    def build() -> set[str]:
        out = Path(tempfile.mkdtemp(dir=tmp_path))
        built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                      "-q", "-w", str(out), str(checkout)], cwd=out)  # fmt: skip
        assert built.returncode == 0, built.stderr
        [path] = out.glob("powrops-*.whl")
        return set(zipfile.ZipFile(path).namelist())

    assert "powrops/cli/retired.py" in build()
    stale.unlink()
    second = build()
    assert "powrops/cli/retired.py" not in second
    assert "powrops/cli/backup.py" in second and "powrops/bundled/migrations/env.py" in second
