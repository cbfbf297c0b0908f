"""The job schedule as Apache Airflow DAG files: one file per server, one DAG per job.

The same table of jobs as cron and systemd (:func:`powrops.schedule.jobs.jobs`): the same
commands, calendars and environment. What flock does on one host, an Airflow pool does across
workers: jobs sharing a lock group share a pool of one slot (``powrops_<server>_<lock>``), so
they never overlap, while different servers' jobs run side by side on any executor.

Exit codes keep their meaning: 0 succeeds; 1 (WARNING) succeeds with a warning in the task
log, or fails when ``schedule.airflow.warning_fails``; 2 (CRITICAL) fails and is not retried
(a finding does not go away by retrying); 3 (UNKNOWN) fails and is retried only for jobs whose
retry is safe (:data:`NO_RETRY` lists the ones that change data; restores and GDPR erasures are
never scheduled) and that are not due again before the retry. A task is stopped after its
interval or ``schedule.airflow.max_runtime``.
The quarterly review waits (``ExternalTaskSensor`` in reschedule mode) for the latest runs of
the jobs whose evidence it reads, the fleet's review for every server's review.

The generated file is written for Apache Airflow 3: the task SDK (``airflow.sdk``: ``DAG``,
``BaseOperator``, ``CronTriggerTimetable``) and the standard provider (the subprocess hook,
the external task sensor). It imports Airflow and croniter (installed with Airflow) only;
powrops runs as a command (``schedule.executable``) on the worker, reports through ``powrops
report run`` so the archive stays the one source.
"""

from __future__ import annotations

import json
import pprint
from collections.abc import Sequence
from pathlib import Path

from powrops.config import Settings
from powrops.schedule.jobs import FLEET_REVIEW, Job, calendar, job_environment, jobs, paths

#: Jobs that change data or start a restore: a failed run is looked at, never re-run blindly.
NO_RETRY = frozenset({"integrity-repair", "retention-apply", "cleanup", "recovery-drill"})
#: The jobs whose runs the quarterly review reads (besides every other report).
REVIEW_ALSO_READS = ("backup-full",)
REVIEW = "quarterly-review"
POOLS_FILE = "powrops_pools.json"


def dag_id(server: str, job: Job | str) -> str:
    return f"powrops_{server}_{job if isinstance(job, str) else job.name}"


def pool_name(server: str, job: Job) -> str:
    return f"powrops_{server}_{job.lock}"


def dag_file_name(server: str) -> str:
    return f"powrops_{server}.py"


def retries(settings: Settings, job: Job) -> int:
    """No retry for a job that changes data, nor for one whose next run comes before the
    retry would (alerts every 5 min): its retries held its DAG (one active run) for
    ``retries`` x ``retry_delay``, its scheduled runs waiting."""
    every = job.every.seconds
    delay = settings.schedule.airflow.retry_delay.timedelta.total_seconds()
    if job.name in NO_RETRY or (every and delay >= every):
        return 0
    return settings.schedule.airflow.retries


def timeout_s(settings: Settings, job: Job) -> int:
    """The task's execution timeout: its interval or max_runtime, whichever is shorter."""
    limit = settings.schedule.airflow.max_runtime.timedelta.total_seconds()
    every = job.every.seconds
    return int(min(limit, every) if every else limit)


def reads(settings: Settings, job: Job) -> list[str]:
    """The jobs whose latest runs ``job`` waits for: only the quarterly review has any."""
    if job.name != REVIEW:
        return []
    found = [j.name for j in jobs(settings) if j.args[:2] == ("report", "run") and j is not job]
    return [name for name in (*REVIEW_ALSO_READS, *found) if name not in (REVIEW, FLEET_REVIEW)]


def waits(settings: Settings, job: Job, fleet: Sequence[Settings] = ()) -> list[dict[str, str]]:
    """The runs ``job`` waits for, each as the sensor's task id, the DAG it waits on and that
    DAG's calendar: the quarterly review waits for the jobs it :func:`reads`, the fleet's
    review for every server's review (``fleet``: each server's settings)."""
    if job.name == REVIEW:
        names = reads(settings, job)
        return [_wait(settings, j, f"wait-{j.name}") for j in jobs(settings) if j.name in names]
    if job.name == FLEET_REVIEW:
        reviews = [(s, _review(s)) for s in fleet]
        return [_wait(s, r, f"wait-{s.server}-review") for s, r in reviews if r is not None]
    return []


def _wait(settings: Settings, job: Job, task_id: str) -> dict[str, str]:
    return {
        "task_id": task_id,
        "dag_id": dag_id(settings.server, job),
        "cron": calendar(settings, job).cron(),
        "timezone": settings.schedule.timezone,
    }


def _review(settings: Settings) -> Job | None:
    """The server's quarterly review job; None when its cadence is "never"."""
    return next((job for job in jobs(settings) if job.name == REVIEW), None)


def job_specs(
    settings: Settings, config_file: str | Path | None, fleet: Sequence[Settings] = ()
) -> list[dict[str, object]]:
    """What the DAG file needs of each job, as plain data (``fleet``: every server's settings,
    for the fleet's review)."""
    where = paths(settings, config_file)
    server = settings.server
    return [
        {
            "name": job.name,
            "dag_id": dag_id(server, job),
            "description": f"{job.description} ({job.key} = {job.every})",
            "cron": calendar(settings, job).cron(),
            "argv": [where.executable, *job.args],
            "env": job_environment(settings, job, where),
            "pool": pool_name(server, job),
            "retries": retries(settings, job),
            "timeout_s": timeout_s(settings, job),
            "waits": waits(settings, job, fleet),
            "tags": ["powrops", server, job.lock],
        }
        for job in jobs(settings)
    ]


def pools(settings: Settings) -> dict[str, dict[str, object]]:
    """The pools a server's DAGs use, in ``airflow pools import`` form: one slot per lock."""
    server = settings.server
    return {
        pool_name(server, job): {
            "slots": 1,
            "description": f"powrops {server}: jobs of lock group {job.lock!r} never overlap",
            "include_deferred": False,
        }
        for job in jobs(settings)
    }


def dag_file(
    settings: Settings, config_file: str | Path | None = None, fleet: Sequence[Settings] = ()
) -> str:
    """The DAG file of one server: ``powrops_<server>.py`` (``fleet``: every server's
    settings, which the fleet's review waits for)."""
    air = settings.schedule.airflow
    specs = pprint.pformat(job_specs(settings, config_file, fleet), width=96, sort_dicts=False)
    return _TEMPLATE.format(
        server=settings.server,
        server_repr=repr(settings.server),
        timezone=repr(settings.schedule.timezone),
        warning_fails=repr(air.warning_fails),
        retry_delay_s=int(air.retry_delay.timedelta.total_seconds()),
        jobs=specs,
    )


def airflow_files(servers: list[Settings], config_file: str | Path | None) -> dict[str, str]:
    """File name -> content: a DAG file per server and the pools they use."""
    files = {dag_file_name(s.server): dag_file(s, config_file, servers) for s in servers}
    every_pool: dict[str, dict[str, object]] = {}
    for settings in servers:
        every_pool.update(pools(settings))
    files[POOLS_FILE] = json.dumps(every_pool, indent=4, sort_keys=True) + "\n"
    return files


_TEMPLATE = '''\
"""powrops jobs of server {server_repr} as Airflow DAGs: one DAG per job (Apache Airflow 3).

Generated by `powrops schedule --format airflow`; do not edit, regenerate after changing the
configuration. Needs powrops installed on the workers at the path in each job's command, the
pools in powrops_pools.json (`airflow pools import powrops_pools.json`), and the config file
each job names. Exit codes: 0 success; 1 WARNING success with a logged warning (unless
WARNING_FAILS); 2 CRITICAL fails, never retried; 3 UNKNOWN fails, retried where safe.
"""

from __future__ import annotations

import os
import subprocess
from datetime import datetime, timedelta

import pendulum
from airflow.providers.standard.hooks.subprocess import SubprocessHook
from airflow.providers.standard.sensors.external_task import ExternalTaskSensor
from airflow.sdk import DAG, BaseOperator, CronTriggerTimetable
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from croniter import croniter  # installed with Airflow: its cron timetables use it

SERVER = {server_repr}
TIMEZONE = {timezone}
WARNING_FAILS = {warning_fails}
RETRY_DELAY = timedelta(seconds={retry_delay_s})
STOP_GRACE = timedelta(minutes=2)
JOBS = {jobs}


class PowropsJob(BaseOperator):
    """Run one powrops command and judge its exit code as powrops means it."""

    ui_color = "#d6eaf8"

    def __init__(self, *, argv: list[str], job_env: dict[str, str], **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.argv = argv
        self.job_env = job_env
        self.hook: SubprocessHook | None = None

    def execute(self, context: object) -> int:
        self.hook = SubprocessHook()
        # the worker's own POWROPS_* (a server, a URL) never redirect the job
        worker = {{k: v for k, v in os.environ.items() if not k.startswith("POWROPS")}}
        result = self.hook.run_command(command=self.argv, env={{**worker, **self.job_env}})
        code = result.exit_code
        what = f"powrops {{self.task_id}} on {{SERVER}}"
        if code == 0:
            return code
        if code == 1 and not WARNING_FAILS:
            self.log.warning("%s ended WARNING (exit 1): findings to look at", what)
            return code
        if code in (1, 2):
            name = "WARNING" if code == 1 else "CRITICAL"
            raise AirflowFailException(f"{{what}} ended {{name}} (exit {{code}}); not retried")
        raise AirflowException(f"{{what}} ended UNKNOWN (exit {{code}}): it could not judge")

    def on_kill(self) -> None:
        """The execution timeout (or a user) stops the task: powrops gets SIGTERM and up to
        STOP_GRACE to stop and record the interruption, its last lines read into the task log
        (the task process ending first would close its output and kill it on its next line)."""
        hook = self.hook
        process = hook.sub_process if hook is not None else None
        if hook is None or process is None or process.poll() is not None:
            return
        hook.send_sigterm()
        try:
            said, _ = process.communicate(timeout=STOP_GRACE.total_seconds())
        except subprocess.TimeoutExpired:
            self.log.error("powrops %s still runs %s after SIGTERM", self.task_id, STOP_GRACE)
            return
        for line in (said or b"").decode(errors="backslashreplace").splitlines():
            self.log.warning("%s", line)


def latest_run_of(cron: str, timezone: str):
    """The logical date of the latest run, at or before this run's, of a DAG on ``cron``."""

    def logical_date_of(logical_date: datetime, **_: object) -> datetime:
        local = pendulum.instance(logical_date).in_timezone(timezone).naive()
        tick = croniter(cron, local + timedelta(seconds=1)).get_prev(datetime)
        return pendulum.instance(tick, tz=timezone)

    return logical_date_of


for job in JOBS:
    with DAG(
        dag_id=job["dag_id"],
        description=job["description"],
        schedule=CronTriggerTimetable(job["cron"], timezone=TIMEZONE),
        start_date=pendulum.datetime(2024, 1, 1, tz=TIMEZONE),
        catchup=False,
        max_active_runs=1,
        tags=job["tags"],
        default_args={{"owner": "powrops"}},
    ) as dag:
        task = PowropsJob(
            task_id=job["name"],
            argv=job["argv"],
            job_env=job["env"],
            pool=job["pool"],
            retries=job["retries"],
            retry_delay=RETRY_DELAY,
            execution_timeout=timedelta(seconds=job["timeout_s"]),
            trigger_rule="all_done" if job["waits"] else "all_success",
        )
        for upstream in job["waits"]:
            # the upstream's run due at or before this one, however it ended; skipped (and
            # this job runs with what there is) when it has not come by the timeout
            wait = ExternalTaskSensor(
                task_id=upstream["task_id"],
                external_dag_id=upstream["dag_id"],
                execution_date_fn=latest_run_of(upstream["cron"], upstream["timezone"]),
                allowed_states=["success", "failed"],
                mode="reschedule",
                poke_interval=min(300, job["timeout_s"]),
                timeout=job["timeout_s"],
                soft_fail=True,
            )
            wait >> task
    globals()[job["dag_id"]] = dag
'''
