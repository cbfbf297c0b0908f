"""The schedule on Apache Airflow: the generated DAG files, and the real thing.

The real test installs Apache Airflow from tests/airflow-requirements.txt (what pip resolved
once for apache-airflow 3.3.2) into a virtual environment outside the clone, cached by the
file's hash (``$POWROPS_AIRFLOW_VENV_DIR``, default ``~/.cache/powrops``), with its metadata in
SQLite under a temporary AIRFLOW_HOME. It skips, saying why, only when that install fails.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
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
        assert spec["retries"] == (0 if name in NO_RETRY | {"alerts"} else 2), name
    assert {"retention-apply", "cleanup", "recovery-drill"} <= {
        n for n, s in specs.items() if s["retries"] == 0
    }
    review = {wait["dag_id"]: wait for wait in specs["quarterly-review"]["waits"]}
    assert dag_id("default", "backup-verification") in review
    assert dag_id("default", "recovery-drill") in review
    assert dag_id("default", "quarterly-review") not in review
    assert review[dag_id("default", "backup-full")] == {
        "task_id": "wait-backup-full", "dag_id": "powrops_default_backup-full",
        "cron": "0 1 * * *", "timezone": "UTC",
    }  # fmt: skip
    assert specs["backup-verification"]["waits"] == []
    assert set(pools(settings)) == {"powrops_default_" + j.lock for j in jobs(settings)}


def test_a_job_due_again_before_its_retry_is_not_retried() -> None:
    """alerts every 5 min, retry_delay 10 min: its next run, not a retry that holds the DAG
    (one active run) for 20 min while its runs wait; hourly backups still retry."""
    retried = {s["name"]: s["retries"] for s in job_specs(_settings(), None)}
    assert retried["alerts"] == 0 and retried["backup-incremental"] == 2
    hourly = _settings(alerts="1h")
    assert {s["name"]: s["retries"] for s in job_specs(hourly, None)}["alerts"] == 2


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
    # the fleet's review: in the first server's file, after every server's own review
    fleet = next(s for s in job_specs(east, None, [east, west]) if s["name"] == "fleet-review")
    assert [(w["task_id"], w["dag_id"]) for w in fleet["waits"]] == [
        ("wait-east-review", "powrops_east_quarterly-review"),
        ("wait-west-review", "powrops_west_quarterly-review"),
    ]
    assert "powrops_east_fleet-review" in files["powrops_east.py"]
    assert "fleet-review" not in files["powrops_west.py"]


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

    def batch(self, *commands: tuple[str, ...], timeout: float = 600) -> None:
        """Several commands in one interpreter, each parsed and run as ``airflow`` runs it
        (``airflow/__main__.py``), so that they pay Airflow's start-up (3 to 5 s) once."""
        script = (
            "import sys\n"
            "from airflow.__main__ import main\n"
            f"for argv in {[list(c) for c in commands]!r}:\n"
            "    sys.argv = ['airflow', *argv]\n"
            "    main()\n"
        )
        done = subprocess.run(
            [str(Path(self.exe).with_name("python")), "-c", script], capture_output=True,
            text=True, env=self.env, timeout=timeout, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"airflow {commands}:\n{done.stdout}{done.stderr}"

    def json(self, *args: str) -> Any:
        """A command's ``-o json`` output (the last line that parses as JSON)."""
        out = self(*args, "-o", "json").stdout
        for line in reversed(out.strip().splitlines()):
            if line.startswith(("[", "{")):
                return json.loads(line)
        raise AssertionError(f"no JSON in the output of airflow {' '.join(args)}:\n{out}")


@pytest.mark.airflow
def test_a_task_gets_its_jobs_environment_not_the_workers_powrops(
    airflow_venv: Path, tmp_path: Path
) -> None:
    """A worker's own POWROPS_SERVER or POWROPS_DATABASE_URL (a profile, a container's
    environment) must not send a job to another server or database."""
    seen, exe = tmp_path / "env.txt", tmp_path / "powrops"
    exe.write_text(f"#!/bin/sh\nenv | grep ^POWROPS | sort > {seen}\n")
    exe.chmod(0o755)
    settings = validate({"schedule": {"executable": str(exe), "config": CONFIG}})
    dag = tmp_path / "powrops_default.py"
    dag.write_text(airflow_files([settings], None)[dag.name])
    script = (f"import runpy; runpy.run_path({str(dag)!r})['powrops_default_alerts']"
              ".get_task('alerts').execute({})")  # fmt: skip
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "home"), "POWROPS_SERVER": "west",
           "POWROPS_DATABASE_URL": "postgresql://x@elsewhere/db"}  # fmt: skip
    done = subprocess.run([str(airflow_venv / "bin" / "python"), "-c", script], env=env,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert seen.read_text().split() == [f"POWROPS_CONFIG={CONFIG}",
                                        "POWROPS_DATABASE_ROLE=powr_reporting"]  # fmt: skip


@pytest.mark.airflow
@pytest.mark.slow
def test_a_timed_out_task_waits_for_powrops_to_record_its_interruption(
    airflow_venv: Path, tmp_path: Path
) -> None:
    """execution_timeout sends SIGTERM; the task then waits while the command stops and
    records (its last line in the task log), where the task ending first closed the command's
    output: powrops' interruption line was lost, and a command writing a line before it
    recorded died of SIGPIPE (as this one does)."""
    recorded, exe, dags = tmp_path / "recorded", tmp_path / "powrops", tmp_path / "dags"
    exe.write_text("#!/bin/sh\ntrap 'sleep 2; echo interrupted, recorded; "
                   f"echo yes > {recorded}; exit 3' TERM\nsleep 600 & wait\n")  # fmt: skip
    exe.chmod(0o755)
    settings = validate({"schedule": {"executable": str(exe), "config": CONFIG,
                                      "airflow": {"max_runtime": "5s", "retries": 0}}})  # fmt: skip
    dags.mkdir()
    for name, text in airflow_files([settings], None).items():
        (dags / name).write_text(text)
    airflow = Airflow(airflow_venv, tmp_path / "home", dags)
    airflow.batch(("db", "migrate"), ("pools", "import", str(dags / "powrops_pools.json")))
    done = airflow("dags", "test", dag_id("default", "alerts"), DAY, check=False, timeout=300)
    assert done.returncode != 0 and "interrupted, recorded" in done.stdout + done.stderr
    assert recorded.read_text() == "yes\n"


@pytest.fixture
def fleet() -> Iterator[Fleet]:
    """east: an embedded cluster whose jobs run under their roles (the generated schedule as
    it is, with the job password file); west: no database at all."""
    names = {"east": {"database": {"application_name": "powrops-east"},
                      "schedule": {"run_as_roles": True, "airflow": {"max_runtime": "2min"}}},
             "west": {"schedule": {"airflow": {"retries": 0}}}}  # fmt: skip
    site = Fleet.create(names, start=("east",))
    yield site
    site.destroy()


def _runs(site: Fleet, server: str, report: str) -> list[dict[str, Any]]:
    folder = site.root / "reports" / server / report
    if not folder.is_dir():
        return []
    return [json.loads((run / "result.json").read_text()) for run in sorted(folder.iterdir())]


#: The day the review is tested on: a Sunday and the 1st, so that every job the review waits
#: for (daily, weekly on Sunday, monthly on the 1st) has its run that same morning.
DAY = "2026-03-01"


def _due(spec: dict[str, Any]) -> str:
    """The logical date of a job's run on DAY, read from its cron line."""
    minute, hour, day, _, weekday = spec["cron"].split()
    assert day in ("*", "1") and weekday in ("*", "0"), spec["cron"]
    return f"{DAY}T{int(hour):02d}:{int(minute):02d}:00+00:00"


def _metadata(home: Path, query: str) -> list[tuple[Any, ...]]:
    """Rows of Airflow's metadata database (SQLite): one query instead of a CLI start each."""
    with contextlib.closing(sqlite3.connect(home / "airflow.db")) as db:
        return db.execute(query).fetchall()


def _states(home: Path, dag: str) -> dict[str, str]:
    """Task id -> state in the DAG's runs (one run per DAG in this test)."""
    rows = _metadata(home, "SELECT dag_id, task_id, state FROM task_instance")
    return {task: state for dag_id, task, state in rows if dag_id == dag}


@pytest.mark.airflow
@pytest.mark.pg
@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_dags_load_and_run_in_airflow(airflow_venv: Path, fleet: Fleet, tmp_path: Path) -> None:
    for step in (("migrate", "latest"), ("backup", "full"), ("db", "start")):
        done = fleet.cli("--server", "east", *step)  # db start: the job roles' passwords
        assert done.returncode == 0, done.stdout + done.stderr
    dags = tmp_path / "dags"
    wrote = fleet.cli("schedule", "--format", "airflow", "--output", str(dags))
    assert wrote.returncode == 0, wrote.stderr
    assert sorted(p.name for p in dags.iterdir()) == [
        "powrops_east.py", "powrops_pools.json", "powrops_west.py"
    ]  # fmt: skip

    home = tmp_path / "home"
    airflow = Airflow(airflow_venv, home, dags)
    # reserialize: what the DAG processor does, the DAGs into the metadata database
    airflow.batch(("db", "migrate"), ("pools", "import", str(dags / "powrops_pools.json")),
                  ("dags", "reserialize"))  # fmt: skip
    pooled = dict(_metadata(home, "SELECT pool, slots FROM slot_pool"))
    assert {pooled[name] for name in json.loads((dags / "powrops_pools.json").read_text())} == {1}
    assert airflow.json("dags", "list-import-errors") == []
    listed = {d["dag_id"] for d in airflow.json("dags", "list")}
    expected = {
        dag_id(server, job) for server in ("east", "west") for job in jobs(fleet.settings(server))
    }
    assert listed == expected and dag_id("east", "fleet-review") in listed

    # One server's readiness report, end to end against its embedded cluster, under its job
    # role with the job password file, at its time on DAY.
    specs = {s["name"]: s for s in job_specs(fleet.settings("east"), fleet.config)}
    readiness = dag_id("east", "readiness-report")
    tested = airflow("dags", "test", readiness, _due(specs["readiness-report"]), timeout=900,
                     check=False)  # fmt: skip
    runs = _runs(fleet, "east", "readiness_report")
    assert len(runs) == 1, f"{readiness} archived no run:\n{tested.stdout}{tested.stderr}"
    assert runs[0]["server"] == "east" and runs[0]["error"] is None, runs[0]
    # exit 0 (OK) and 1 (WARNING) succeed, 2 (CRITICAL) and 3 (UNKNOWN) fail the task
    expected_state = "success" if runs[0]["exit_code"] in (0, 1) else "failed"
    assert _states(home, readiness) == {"readiness-report": expected_state}, tested.stderr
    assert (tested.returncode == 0) == (expected_state == "success")

    # The quarterly review waits for the runs of that morning: the other runs it reads are
    # recorded without running their jobs, then its sensors poke and find every one.
    waits = specs["quarterly-review"]["waits"]
    airflow.batch(*(
        ("dags", "test", w["dag_id"], _due(specs[w["dag_id"].removeprefix("powrops_east_")]),
         "--mark-success-pattern", ".*")
        for w in waits if w["dag_id"] != readiness
    ))  # fmt: skip
    review = dag_id("east", "quarterly-review")
    tested = airflow("dags", "test", review, _due(specs["quarterly-review"]), timeout=900,
                     check=False)  # fmt: skip
    states = _states(home, review)
    found = {w["task_id"]: "success" for w in waits}  # found, not skipped after the timeout
    assert states == {**found, "quarterly-review": states["quarterly-review"]}, tested.stdout
    reviewed = _runs(fleet, "east", "quarterly_review")
    assert len(reviewed) == 1 and reviewed[0]["error"] is None, tested.stdout[-3000:]
    assert states["quarterly-review"] == ("success" if reviewed[0]["exit_code"] < 2 else "failed")

    # west has no database: its report exits 3 (UNKNOWN) and the task fails (no retries set)
    dag = dag_id("west", "readiness-report")
    failed = airflow("dags", "test", dag, DAY, timeout=600, check=False)
    assert failed.returncode != 0
    assert "ended UNKNOWN (exit 3)" in failed.stdout + failed.stderr
    assert _states(home, dag) == {"readiness-report": "failed"}
    print(f"\nAirflow: readiness {runs[0]['status']}, quarterly review {reviewed[0]['status']}")
