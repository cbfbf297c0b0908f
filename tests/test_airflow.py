"""The schedule on Apache Airflow: the generated DAG files, and the real thing.

The real test installs Apache Airflow from tests/airflow-requirements.txt (what pip resolved
once for apache-airflow 2.10.5) into a virtual environment outside the clone, cached by the
file's hash (``$POWROPS_AIRFLOW_VENV_DIR``, default ``~/.cache/powrops``), with its metadata in
SQLite under a temporary AIRFLOW_HOME. It skips, saying why, only when that install fails.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleet_site import Fleet
from powrops.config import validate
from powrops.schedule import jobs
from powrops.schedule.airflow import NO_RETRY, airflow_files, dag_id, job_specs, pools

REQUIREMENTS = Path(__file__).with_name("airflow-requirements.txt")
CONFIG = "/etc/powrops/powrops.toml"
EXE = "/opt/powrops/bin/powrops"


def _settings(**schedule: Any) -> Any:
    data = {"schedule": {"executable": EXE, "config": CONFIG, **schedule}}
    return validate({**data, "backup": {"storage": {"secondary": {"kind": "file",
                     "url": "file:///srv/copy"}}}})  # fmt: skip


def test_dag_specs_follow_the_job_table() -> None:
    settings = _settings()
    specs = {spec["name"]: spec for spec in job_specs(settings, None)}
    assert list(specs) == [job.name for job in jobs(settings)]  # same jobs as cron and systemd
    full = specs["backup-full"]
    assert full["argv"] == [EXE, "backup", "full"]
    assert full["cron"] == "0 1 * * *"
    assert full["env"] == {"POWROPS_CONFIG": CONFIG, "POWROPS_DATABASE_ROLE": "powr_backup",
                           "PGPASSFILE": str(settings.state_dir / "pgpass")}  # fmt: skip
    assert full["pool"] == "powrops_default_backup" == specs["backup-copy"]["pool"]
    assert specs["alerts"]["timeout_s"] == 300  # never outlives its 5 min interval
    assert full["timeout_s"] == 6 * 3600  # max_runtime
    for name, spec in specs.items():
        assert spec["retries"] == (0 if name in NO_RETRY else 2), name
    assert {"retention-apply", "cleanup", "recovery-drill"} <= {
        n for n, s in specs.items() if s["retries"] == 0
    }
    review = specs["quarterly-review"]["reads"]
    assert dag_id("default", "backup-verification") in review
    assert dag_id("default", "recovery-drill") in review
    assert dag_id("default", "backup-full") in review
    assert dag_id("default", "quarterly-review") not in review
    assert specs["backup-verification"]["reads"] == []
    assert set(pools(settings)) == {"powrops_default_" + j.lock for j in jobs(settings)}


def test_airflow_files_one_per_server_and_the_pools() -> None:
    base = {"schedule": {"executable": EXE, "config": CONFIG}}
    east = validate(base).model_copy(update={"server": "east", "servers": ("east", "west")})
    west = validate(base).model_copy(update={"server": "west", "servers": ("east", "west")})
    files = airflow_files([east, west], None)
    assert sorted(files) == ["powrops_east.py", "powrops_pools.json", "powrops_west.py"]
    assert "SERVER = 'east'" in files["powrops_east.py"]
    assert "'POWROPS_SERVER': 'west'" in files["powrops_west.py"]
    compile(files["powrops_east.py"], "powrops_east.py", "exec")
    pool_names = json.loads(files["powrops_pools.json"])
    assert "powrops_east_backup" in pool_names and "powrops_west_backup" in pool_names
    assert all(p["slots"] == 1 for p in pool_names.values())


# --- the real thing ------------------------------------------------------------------------


def _venv_root() -> Path:
    configured = os.environ.get("POWROPS_AIRFLOW_VENV_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "powrops"


def _base_python() -> str:
    return str(getattr(sys, "_base_executable", None) or sys.executable)


def install_airflow() -> tuple[Path, float]:
    """The cached Airflow virtualenv (created when missing) and the seconds its install took
    (0 when it was cached). pytest.skip when it cannot be installed."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:12]
    root = _venv_root()
    root.mkdir(parents=True, exist_ok=True)
    venv = root / f"airflow-venv-{digest}"
    marker = venv / ".powrops-installed"
    with open(root / f"airflow-venv-{digest}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return venv, 0.0
        shutil.rmtree(venv, ignore_errors=True)
        started = time.monotonic()
        steps = [
            [_base_python(), "-m", "venv", str(venv)],
            [str(venv / "bin" / "pip"), "install", "--quiet", "--no-deps", "-r", str(REQUIREMENTS)],
        ]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, timeout=1800, check=False)
            if done.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                pytest.skip(f"Apache Airflow cannot be installed here: {' '.join(step[:3])}: "
                            + " | ".join(tail))  # fmt: skip
        took = time.monotonic() - started
        marker.write_text(f"{took:.0f} s\n")
        return venv, took


@pytest.fixture(scope="session")
def airflow_venv() -> Path:
    venv, took = install_airflow()
    if took:
        print(f"\nApache Airflow installed into {venv} in {took:.0f} s")
    return venv


class Airflow:
    """The ``airflow`` command of the cached virtualenv, with AIRFLOW_HOME in a folder."""

    def __init__(self, venv: Path, home: Path, dags: Path) -> None:
        self.exe = str(venv / "bin" / "airflow")
        base = {k: v for k, v in os.environ.items() if not k.startswith(("POWROPS", "AIRFLOW"))}
        self.env = {
            **base,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
            "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        }

    def __call__(
        self, *args: str, timeout: float = 600, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [self.exe, *args], capture_output=True, text=True, env=self.env, timeout=timeout,
            check=False,
        )  # fmt: skip
        if check:
            assert done.returncode == 0, f"airflow {' '.join(args)}:\n{done.stdout}{done.stderr}"
        return done

    def json(self, *args: str) -> Any:
        """A command's ``-o json`` output (the last line that parses as JSON)."""
        out = self(*args, "-o", "json").stdout
        for line in reversed(out.strip().splitlines()):
            if line.startswith(("[", "{")):
                return json.loads(line)
        raise AssertionError(f"no JSON in the output of airflow {' '.join(args)}:\n{out}")


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    names = {"east": {"database": {"application_name": "powrops-east"}},
             "west": {"schedule": {"airflow": {"retries": 0}}}}  # fmt: skip
    site = Fleet.create(names, start=("east",))
    yield site
    site.destroy()


def _runs(site: Fleet, server: str, report: str) -> list[dict[str, Any]]:
    folder = site.root / "reports" / server / report
    if not folder.is_dir():
        return []
    return [json.loads((run / "result.json").read_text()) for run in sorted(folder.iterdir())]


@pytest.mark.airflow
@pytest.mark.pg
@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_dags_load_and_run_in_airflow(airflow_venv: Path, fleet: Fleet, tmp_path: Path) -> None:
    for step in (("migrate", "latest"), ("backup", "full")):
        done = fleet.cli("--server", "east", *step)
        assert done.returncode == 0, done.stdout + done.stderr
    dags = tmp_path / "dags"
    wrote = fleet.cli("schedule", "--format", "airflow", "--output", str(dags))
    assert wrote.returncode == 0, wrote.stderr
    assert sorted(p.name for p in dags.iterdir()) == [
        "powrops_east.py", "powrops_pools.json", "powrops_west.py"
    ]  # fmt: skip

    airflow = Airflow(airflow_venv, tmp_path / "home", dags)
    airflow("db", "migrate")
    airflow("pools", "import", str(dags / "powrops_pools.json"))
    assert {p["pool"] for p in airflow.json("pools", "list")} >= {
        "powrops_east_backup", "powrops_west_backup", "powrops_east_db"
    }  # fmt: skip
    airflow("dags", "reserialize")  # what the scheduler does: the DAGs into the metadata DB
    assert airflow.json("dags", "list-import-errors") == []
    listed = {d["dag_id"] for d in airflow.json("dags", "list")}
    expected = {
        dag_id(server, job) for server in ("east", "west") for job in jobs(fleet.settings(server))
    }
    assert listed == expected
    # the quarterly review waits for the runs it reads
    tasks = airflow("tasks", "list", dag_id("east", "quarterly-review")).stdout.split()
    assert {"quarterly-review", "wait-backup-full", "wait-backup-verification",
            "wait-recovery-drill", "wait-integrity-report"} <= set(tasks)  # fmt: skip

    # readiness and verification of one server, end to end against its embedded cluster
    outcomes: dict[str, str] = {}
    for job, report in (("readiness-report", "readiness_report"),
                        ("backup-verification", "backup_verification")):  # fmt: skip
        dag = dag_id("east", job)
        tested = airflow("dags", "test", dag, "2026-12-01", timeout=900, check=False)
        runs = _runs(fleet, "east", report)
        assert len(runs) == 1, f"{dag} archived no run:\n{tested.stdout}{tested.stderr}"
        assert runs[0]["server"] == "east" and runs[0]["error"] is None, runs[0]
        states = {r["dag_id"]: r["state"] for r in airflow.json("dags", "list-runs", "-d", dag)}
        # exit 0 (OK) and 1 (WARNING) succeed, 2 (CRITICAL) and 3 (UNKNOWN) fail the task
        expected_state = "success" if runs[0]["exit_code"] in (0, 1) else "failed"
        assert states == {dag: expected_state}, (runs[0]["status"], states, tested.stderr)
        assert (tested.returncode == 0) == (expected_state == "success")
        outcomes[job] = runs[0]["status"]
    # west has no database: its report exits 3 (UNKNOWN) and the task fails (no retries set)
    dag = dag_id("west", "readiness-report")
    failed = airflow("dags", "test", dag, "2026-12-01", timeout=600, check=False)
    assert failed.returncode != 0
    assert "ended UNKNOWN (exit 3)" in failed.stdout + failed.stderr
    assert [r["state"] for r in airflow.json("dags", "list-runs", "-d", dag)] == ["failed"]
    print(f"\nAirflow task outcomes: {outcomes}")
