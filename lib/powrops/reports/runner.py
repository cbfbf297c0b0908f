"""Running report notebooks with papermill into the archive.

``run_report`` is what ``powrops report run NAME`` and the scheduler call. It validates the
report name and parameters, executes the notebook on this interpreter's kernel, and always
archives what happened under ``<reports_dir>/<name>/<UTC timestamp>/``: the executed
notebook, ``report.html`` and ``result.json`` — also when a cell fails, times out or the
kernel dies, in which case the run is UNKNOWN (exit code 3) and the error names the cell.
Secrets passed by the caller and passwords in connection URLs are redacted from every
archived file.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import platform
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from powrops import __version__, bundle, gate
from powrops.config import DEFAULT_SERVER, SERVER_ENV
from powrops.errors import Interrupted, ReportError, interrupts_held
from powrops.findings import Severity
from powrops.format import describe_target
from powrops.reports import kernel as report_kernel
from powrops.reports import papermill_s3  # noqa: F401  (before papermill is loaded)
from powrops.reports.catalog import HTML_FILE, NOTEBOOK_FILE, RESULT_FILE
from powrops.reports.html import (
    ReportHeader,
    header_html,
    prepare,
    read_notebook,
    render_html,
)
from powrops.reports.index import build_index
from powrops.reports.record import RUN_DIR_ENV, write_json, write_text
from powrops.reports.redaction import redact, redact_tree
from powrops.reports.spec import ReportSpec, coerce_parameters, locate, read_spec
from powrops.storage.local import kept_owner

if TYPE_CHECKING:
    import nbformat

    from powrops.reports.remote import ReportArchive

RUN_ID_ENV = "POWROPS_RUN_ID"
NO_RESULT = "notebook did not record a result"
ENGINE = "powrops"


@dataclass(frozen=True)
class RunResult:
    """The outcome of one report run and where it was archived."""

    path: Path
    status: Severity
    exit_code: int
    result: dict[str, Any]

    @property
    def html(self) -> Path:
        return self.path / HTML_FILE


def run_report(
    name: str,
    parameters: Mapping[str, Any] | None = None,
    *,
    reports_dir: Path,
    root: Path | None = None,
    timeout: float = 1800,
    env: Mapping[str, str] | None = None,
    secrets: Iterable[str] = (),
    remote: ReportArchive | None = None,
    target: Mapping[str, Any] | None = None,
    server: str = DEFAULT_SERVER,
    every_s: float | None = None,
    check: Callable[[Mapping[str, Any]], None] | None = None,
) -> RunResult:
    """Run report ``name`` with ``parameters`` and archive it under ``reports_dir``.

    ``timeout`` limits each cell (seconds). ``env`` adds environment variables for the
    kernel: a command passes ``config.handoff_env(settings)``, so that the notebook's
    ``config.settings()`` loads the configuration the command loaded, never another. Bad
    names or parameters raise before anything is archived; anything that goes wrong during
    execution, a kernel that cannot start included, is archived as a failed (UNKNOWN) run. An
    interrupt (SIGINT, SIGTERM) once a cell ran is archived so too, with the cells that ran,
    then raised; one while the kernel starts leaves no folder.
    With ``remote``, the run is then copied to the remote archive and the retention applied.
    ``target`` (the database's :class:`~powrops.db.Identity` as a dict) is kept in
    ``result.json`` and shown in the page's header. ``server`` is the configured server the
    run belongs to: a named server's runs go to ``<reports_dir>/<server>/<name>/``, and its
    kernel gets ``POWROPS_SERVER`` so that the notebook's ``config.settings()`` loads the same
    server. ``every_s`` is the report's scheduled interval, kept for the fleet page's staleness.
    ``check`` judges the converted parameters' values as the notebook would (the command line
    hands in :func:`powrops.cli.common.check_parameters`), before anything is archived.
    """
    path, kind = locate(name, root)
    project = (root or bundle.checkout() or Path.cwd()).resolve()
    archive = reports_dir.resolve()
    started = datetime.now(UTC)
    clock = time.monotonic()
    report_dir = server_dir(archive, server) / name
    made = _missing(report_dir)
    run_dir = new_run_dir(report_dir, started)
    kernel_env = {SERVER_ENV: server, **(env or {}), RUN_DIR_ENV: str(run_dir)}
    # The kernel starts now, while this process reads the notebook and loads papermill.
    env = {**kernel_env, RUN_ID_ENV: run_dir.name}
    try:
        kernel, error = report_kernel.started(project, env, report_kernel.preload_options(path))
    except BaseException:  # interrupted before a cell ran: nothing to archive, no folder left
        _unmake([run_dir, *made])
        raise
    try:
        spec, params = _validated(path, kind, parameters or {}, run_dir, made, check)
        # The page's exporter is made ready while the kernel runs the cells: this process waits.
        ready = threading.Thread(target=prepare, args=(spec.hide_code,), name="html-prepare")
        ready.start()
        try:
            if kernel is not None:
                nb, error, interrupt = _execute(spec, params, timeout, kernel)
            else:
                nb, interrupt = _unexecuted(spec), None
        finally:
            ready.join()
    finally:
        if kernel is not None:
            report_kernel.stop_kernel(kernel)
    result = _result(spec, run_dir, params, started, time.monotonic() - clock, error)
    result["server"] = server
    result["every_s"] = every_s
    result["target"] = dict(target) if target is not None else None
    with interrupts_held() as held:  # an archive cut short: a notebook without its page
        write_archive(run_dir, spec, nb, result, list(secrets))
        build_index(archive)
    if interrupt is not None:  # what ran is archived here; `powrops report sync` uploads it
        raise interrupt.leaving(f"{name}: the cells that ran are archived as UNKNOWN in {run_dir}")
    if held:
        raise Interrupted(held[0]).leaving(
            f"{name}: it had run, and is archived as {result['status']} in {run_dir}"
        )
    if remote is not None:
        remote.after_run(run_dir)
    final = json.loads((run_dir / RESULT_FILE).read_text(encoding="utf-8"))
    status = Severity.parse(final["status"])
    return RunResult(run_dir, status, int(status), final)


def write_archive(
    run_dir: Path,
    spec: ReportSpec,
    nb: nbformat.NotebookNode,
    result: dict[str, Any],
    secrets: list[str],
) -> None:
    """Write the redacted executed notebook, report.html and the final result.json."""
    import nbformat

    nb = nbformat.from_dict(redact_tree(nb, secrets))  # type: ignore[no-untyped-call]
    text = nbformat.writes(nb)  # type: ignore[no-untyped-call]
    write_text(run_dir / NOTEBOOK_FILE, redact(text, secrets))
    page = _render(nb, spec, result)  # may mark the run failed if rendering fails
    write_text(run_dir / HTML_FILE, redact(page, secrets))
    write_json(run_dir / RESULT_FILE, redact_tree(result, secrets))


def server_dir(archive: Path, server: str) -> Path:
    """The folder of a server's reports: the archive itself for ``default``."""
    return archive if server == DEFAULT_SERVER else archive / server


def new_run_dir(report_dir: Path, started: datetime, suffix: str = "") -> Path:
    """A fresh ``<report_dir>/<UTC timestamp>[suffix][-n]`` directory; ReportError naming
    it when the archive cannot take it (a folder another user owns, a file in the way)."""
    stamp = started.strftime("%Y%m%dT%H%M%SZ") + suffix
    missing = [d for d in (report_dir, *report_dir.parents) if not d.exists()]
    owner = kept_owner(missing[-1].parent if missing else report_dir)  # root's run, by hand
    for n in itertools.count(1):
        candidate = report_dir / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            report_dir.mkdir(parents=True, exist_ok=True)
            candidate.mkdir()
            if owner is not None:
                for made in (*reversed(missing), candidate):
                    os.chown(made, *owner)
        except FileExistsError:
            continue
        except OSError as exc:
            raise ReportError(
                f"cannot create the run folder {candidate}: {exc.strerror}; the report "
                "archive (reports.dir) must be a folder the user running powrops can write"
            ) from exc
        return candidate
    raise AssertionError("unreachable")


def _validated(
    path: Path,
    kind: str,
    given: Mapping[str, Any],
    run_dir: Path,
    made: list[Path],
    check: Callable[[Mapping[str, Any]], None] | None = None,
) -> tuple[ReportSpec, dict[str, Any]]:
    """The report's spec and its checked parameters; when they are refused (or the notebook
    cannot be read), the run folder and the folders made for it are removed again."""
    try:
        spec = read_spec(path, kind)
        params = coerce_parameters(spec, given)
        if check is not None:
            check(params)
    except BaseException:
        _unmake([run_dir, *made])
        raise
    if "run_id" in spec.parameters:
        params = {**params, "run_id": run_dir.name}
    return spec, params


def _unmake(folders: list[Path]) -> None:
    """Remove the run's folder and those made for it, deepest first, each if still empty."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _missing(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, deepest first."""
    return [path for path in [folder, *folder.parents] if not path.exists()]


def _execute(
    spec: ReportSpec,
    params: dict[str, Any],
    timeout: float,
    kernel: Any,
) -> tuple[nbformat.NotebookNode, dict[str, Any] | None, Interrupted | None]:
    """Execute the notebook; return the (possibly partial) executed notebook, the error, and
    the interrupt (SIGINT, SIGTERM) that stopped it, if one did: the caller archives what ran
    before it raises the interrupt, so a run stopped by hand or by a scheduler's timeout says
    so, with its cells, instead of leaving an empty folder.

    The executed notebook stays in memory (papermill's engine keeps hold of it, :func:`_engine`)
    and is written once, redacted, into the archive: nothing unredacted touches a disk, and
    papermill does not rewrite the file before and after every cell. The kernel, started by
    :func:`~powrops.reports.kernel._start_kernel`, is stopped at once when the last cell is
    done: everything it had to do was in the cells.
    """
    import papermill

    error: dict[str, Any] | None = None
    interrupt: Interrupted | None = None
    kept: list[Any] = []
    try:
        with report_kernel.interrupting(kernel):
            papermill.execute_notebook(
                str(spec.path),
                None,
                parameters=params,
                engine_name=_engine(),
                kernel_name=kernel.kernel_name,
                progress_bar=False,
                log_output=False,
                execution_timeout=timeout,
                shutdown_kernel="immediate",
                kept=kept,
                started=kernel,
            )
    except Exception as exc:
        error = _describe(exc, timeout)
    except KeyboardInterrupt as exc:
        interrupt = Interrupted.of(exc)
        if getattr(kernel, "settled", None) is False:
            interrupt.leaving(
                f"the kernel did not end its cell within {report_kernel.INTERRUPT_GRACE_S:g} s "
                "of the interrupt and was killed: what that cell held may be left"
            )
        error = {"ename": "Interrupted", "evalue": f"{interrupt}; the cells before it ran and "
                 "are kept", "cell_index": None}  # fmt: skip
    nb = kept[0].nb if kept else _unexecuted(spec)
    if error is not None and error.get("cell_index") is None:
        error["cell_index"] = _running_cell(nb)
    return nb, error, interrupt


@functools.cache
def _engine() -> str:
    """The name of papermill's engine for report runs, registered on first use: nbclient's
    (as papermill's own runs it), which also hands the caller its execution manager
    (``kept``), whose notebook holds what ran, also when a timeout or a dead kernel stopped
    the run, and runs the cells on a kernel the caller ``started``, which it then stops."""
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.log import logger

    class KeepingEngine(NBClientEngine):  # type: ignore[misc]
        @classmethod
        def execute_managed_notebook(
            cls,
            nb_man: Any,
            kernel_name: str,
            *,
            kept: list[Any],
            started: Any,
            start_timeout: float = 60,
            execution_timeout: float | None = None,
            **kwargs: Any,
        ) -> Any:
            kept.append(nb_man)
            kwargs.pop("input_path", None)
            client = PapermillNotebookClient(
                nb_man,
                km=started,
                kernel_name=kernel_name,
                timeout=execution_timeout,
                startup_timeout=start_timeout,
                log=logger,
                **kwargs,
            )
            return client.execute(cleanup_kc=True)  # as when it starts the kernel itself

    papermill_engines.register(ENGINE, KeepingEngine)
    return ENGINE


def _describe(exc: Exception, timeout: float) -> dict[str, Any]:
    """The error of a failed run: cell index, exception name and value."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        return {
            "ename": str(exc.ename),
            "evalue": str(exc.evalue),
            "cell_index": exc.cell_index,
            "execution_count": exc.exec_count,
        }
    if isinstance(exc, CellTimeoutError):
        value = f"a cell ran longer than the {timeout:g} s timeout"
        return {"ename": "CellTimeoutError", "evalue": value, "cell_index": None}
    if isinstance(exc, DeadKernelError):
        return {"ename": "DeadKernelError", "evalue": str(exc), "cell_index": None}
    return {"ename": type(exc).__name__, "evalue": str(exc), "cell_index": None}


def _unexecuted(spec: ReportSpec) -> nbformat.NotebookNode:
    """The input notebook, for a run that failed before papermill wrote anything."""
    return read_notebook(spec.path)


def _running_cell(nb: nbformat.NotebookNode) -> int | None:
    """Index of the cell that was running when execution stopped (timeout, dead kernel).

    papermill marks it ``running``; after nbclient interrupted it, it is the last code cell
    that papermill started.
    """
    started = None
    for index, cell in enumerate(nb.cells):
        state = cell.get("metadata", {}).get("papermill", {})
        if state.get("status") == "running":
            return index
        if cell.cell_type == "code" and state.get("start_time"):
            started = index
    return started


def _recorded(run_dir: Path) -> dict[str, Any] | None:
    """What the notebook recorded with ``powrops.reports.record``, if anything."""
    path = run_dir / RESULT_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _result(
    spec: ReportSpec,
    run_dir: Path,
    params: dict[str, Any],
    started: datetime,
    duration: float,
    error: dict[str, Any] | None,
) -> dict[str, Any]:
    """The final result.json: the notebook's record merged with what the runner knows."""
    recorded = _recorded(run_dir)
    if error is None and recorded is None:
        error = {"ename": "NoResult", "evalue": NO_RESULT, "cell_index": None}
    status = Severity.UNKNOWN if error else Severity.parse(recorded["status"] if recorded else 3)
    finished = datetime.now(UTC)
    return {
        **run_header(spec, run_dir, started),
        "finished_at": finished.isoformat(timespec="milliseconds"),
        "duration_s": round(duration, 3),
        "parameters": json.loads(json.dumps(params, default=str)),
        "status": status.name,
        "exit_code": int(status),
        "failed": error is not None,
        "error": error,
        "summary": (recorded or {}).get("summary"),
        "period": (recorded or {}).get("period"),
        "findings": (recorded or {}).get("findings", []),
        "figures": (recorded or {}).get("figures", {}),
        "confirmations": gate.decisions(run_dir),  # kept as taken, recorded or not
        "versions": versions(),
    }


def run_header(spec: ReportSpec, run_dir: Path, started: datetime) -> dict[str, Any]:
    """What every run's result.json begins with: the report, the run's id and its start."""
    return {
        "name": spec.name,
        "kind": spec.kind,
        "description": spec.description,
        "run_id": run_dir.name,
        "started_at": started.isoformat(timespec="milliseconds"),
    }


def versions() -> dict[str, str]:
    import nbclient
    import nbconvert
    import papermill

    return {
        "powrops": __version__,
        "python": platform.python_version(),
        "papermill": str(papermill.__version__),
        "nbconvert": str(nbconvert.__version__),
        "nbclient": str(nbclient.__version__),
    }


def error_text(error: Mapping[str, Any] | None) -> str | None:
    """A run's error as one line: its name, the cell it stopped in, its message."""
    if not error:
        return None
    where = "" if error.get("cell_index") is None else f" in cell {error['cell_index']}"
    return f"{error.get('ename')}{where}: {error.get('evalue')}"


def _header(spec: ReportSpec, result: Mapping[str, Any]) -> ReportHeader:
    return ReportHeader(
        title=f"{spec.name}: {spec.description}" if spec.description else spec.name,
        status=Severity.parse(result["status"]),
        kind=spec.kind,
        started_at=result["started_at"],
        duration_s=result["duration_s"],
        parameters=result["parameters"],
        error=error_text(result["error"]),
        version=result["versions"]["powrops"],
        target=describe_target(result.get("target")),
        period=result.get("period"),
        confirmations=result.get("confirmations") or (),
    )


def _render(nb: nbformat.NotebookNode, spec: ReportSpec, result: dict[str, Any]) -> str:
    """The report page; if rendering itself fails, a plain page saying so (and the run fails)."""
    try:
        return render_html(nb, hide_code=spec.hide_code, header=_header(spec, result))
    except Exception as exc:
        error = {"ename": type(exc).__name__, "evalue": f"rendering failed: {exc}"}
        result.update(status="UNKNOWN", exit_code=3, failed=True, error=error)
        return (
            "<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>"
            + header_html(_header(spec, result))
            + "</body></html>"
        )
