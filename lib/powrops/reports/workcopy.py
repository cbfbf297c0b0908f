"""A runbook's working copy: what ``powrops runbook NAME`` opens for an incident.

The runbooks in the checkout are templates and never change. A working copy is the template
with its parameters injected (as papermill does for a report run), written into a new run
folder of the report archive, ``<reports_dir>/[<server>/]<name>/<UTC timestamp>-interactive/``,
as ``<name>.ipynb``. Its first code cell starts the kernel's recorder
(:mod:`powrops.reports.evidence`), which archives every cell as it runs beside it:
``notebook.ipynb``, ``report.html`` and ``result.json``.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat

from powrops import bundle
from powrops.errors import ReportError
from powrops.reports.catalog import RESULT_FILE
from powrops.reports.index import build_index
from powrops.reports.kernel import ensure_kernel
from powrops.reports.record import write_json, write_text
from powrops.reports.runner import new_run_dir, run_header, server_dir
from powrops.reports.spec import ReportSpec, coerce_parameters, discover

SUFFIX = "-interactive"
#: JupyterLab's options for the runbooks (`make lab`, and the command named where powrops was
#: installed from its wheel): closing a working copy's tab leaves its kernel running, idle and
#: holding its memory; Jupyter Server shuts down a kernel no page is connected to once it has
#: been idle this long (a kernel still busy in a cell is left alone). The evidence does not
#: depend on the kernel: reopening the copy later starts a new one, which goes on with it.
#: A save into the checkout's templates (a runbook opened from runbooks/ and run, autosaved
#: or saved) is refused by :func:`keep_templates`.
LAB_OPTIONS = (
    "--MappingKernelManager.cull_idle_timeout=1800",
    "--MappingKernelManager.cull_interval=60",
    "--MappingKernelManager.cull_connected=False",
    "--ContentsManager.pre_save_hook=powrops.reports.workcopy.keep_templates",
)
#: The checkout's folders of templates, which JupyterLab never writes into.
TEMPLATE_FOLDERS: tuple[bundle.Folder, ...] = ("runbooks", "notebooks")
#: The tag of the working copy's first code cell, the one that starts the recorder.
EVIDENCE_TAG = "powrops-evidence"


def keep_templates(model: Any, path: str, contents_manager: Any, **kwargs: Any) -> None:
    """Jupyter Server's pre-save hook under `make lab`: refuse to write into the checkout's
    templates (runbooks/, notebooks/), where a runbook opened and run, then saved or
    autosaved, would change the checkout; JupyterLab shows the message."""
    target = (Path(contents_manager.root_dir) / path.lstrip("/")).resolve()
    for name in TEMPLATE_FOLDERS:
        templates = bundle.folder(name).resolve()
        if target == templates or templates in target.parents:
            from tornado.web import HTTPError

            raise HTTPError(
                403,
                f"{name}/{target.name} is not saved: the templates in {name}/ never change. "
                f"For an incident open a working copy (powrops runbook {target.stem}), "
                "which is archived as it runs.",
            )


@dataclass(frozen=True)
class WorkingCopy:
    """A working copy written into its run folder."""

    run_dir: Path
    notebook: Path
    parameters: dict[str, Any]


def runbook_spec(name: str, root: Path | None = None) -> ReportSpec:
    """The runbook template ``name`` (ReportError naming the runbooks when there is none)."""
    specs = discover(root)
    runbooks = {n: s for n, s in specs.items() if s.kind == "runbook"}
    if name not in runbooks:
        available = ", ".join(sorted(runbooks)) or "none"
        raise ReportError(f"unknown runbook {name!r}; the runbooks are: {available}")
    return runbooks[name]


def create(
    name: str,
    parameters: Mapping[str, Any],
    *,
    reports_dir: Path,
    server: str,
    target: Mapping[str, Any] | None = None,
    config_file: str | None = None,
    root: Path | None = None,
    check: Callable[[Mapping[str, Any]], None] | None = None,
) -> WorkingCopy:
    """Write the working copy of runbook ``name`` into a new run folder and return it.

    ``parameters`` (as typed: strings are converted to the parameter's type) are checked
    against the template's before anything is written, their values by ``check`` too, as
    ``report run`` checks them (:func:`powrops.cli.common.check_parameters`). ``config_file``
    is injected as the runbook's ``config_path`` unless given, so that the kernel loads this
    configuration.
    """
    spec = runbook_spec(name, root)
    params = coerce_parameters(spec, parameters)
    if check is not None:
        check(params)
    if config_file and "config_path" in spec.parameters:
        params.setdefault("config_path", config_file)
    archive = reports_dir.resolve()
    started = datetime.now(UTC)
    run_dir = new_run_dir(server_dir(archive, server) / name, started, suffix=SUFFIX)
    if "run_id" in spec.parameters:
        params["run_id"] = run_dir.name
    notebook = run_dir / f"{name}.ipynb"
    try:
        nb = _working_copy(spec, params, run_dir)
    except Exception:
        run_dir.rmdir()  # nothing was written: no empty run in the archive
        raise
    write_text(notebook, nbformat.writes(nb))  # type: ignore[no-untyped-call]
    result = _opened(spec, run_dir, params, started, server, target, config_file, notebook)
    write_json(run_dir / RESULT_FILE, result)
    build_index(archive)
    return WorkingCopy(run_dir, notebook, params)


def unfinished(reports_dir: Path, server: str, name: str) -> list[tuple[Path, dict[str, Any]]]:
    """Earlier working copies of runbook ``name`` whose run never reached its record (never
    run, stopped on an error, or left half way), newest first, each with its result.json:
    what a second ``powrops runbook NAME`` names, so that one incident's evidence is not split
    between copies without the DBA knowing."""
    found = []
    runs = server_dir(reports_dir.resolve(), server) / name
    for result_file in runs.glob(f"*{SUFFIX}*/{RESULT_FILE}"):
        try:
            result = json.loads(result_file.read_text())
        except (OSError, ValueError):
            continue
        if not result.get("recorded"):
            found.append((result_file.parent / f"{name}.ipynb", result))
    return sorted(found, key=lambda pair: str(pair[1].get("created_at")), reverse=True)


def _working_copy(
    spec: ReportSpec, params: Mapping[str, Any], run_dir: Path
) -> nbformat.NotebookNode:
    """The template, parameterized, on this interpreter's kernel, recorder cell first."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    kernel = ensure_kernel()
    template = load_notebook_node(str(spec.path))
    nb: nbformat.NotebookNode = parameterize_notebook(
        template, dict(params), kernel_name=kernel, language="python"
    )
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": "powrops", "language": "python"}
    nb.metadata.pop("papermill", None)
    for cell in nb.cells:
        cell.metadata.pop("papermill", None)
    first_code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    nb.cells.insert(first_code, _evidence_cell(spec, run_dir))
    return nb


def _evidence_cell(spec: ReportSpec, run_dir: Path) -> nbformat.NotebookNode:
    source = (
        f"# Working copy of runbooks/{spec.path.name}; the template is never changed.\n"
        "# From here on every cell you run is archived as it runs, with its outputs and the\n"
        "# answers you type, in this folder: notebook.ipynb, report.html and result.json.\n"
        "from powrops.reports import evidence\n"
        f"evidence.start({json.dumps(str(run_dir))})"
    )
    cell = nbformat.v4.new_code_cell(source)  # type: ignore[no-untyped-call]
    cell.metadata["tags"] = [EVIDENCE_TAG]
    return cell  # type: ignore[no-any-return]


def _opened(
    spec: ReportSpec,
    run_dir: Path,
    params: Mapping[str, Any],
    started: datetime,
    server: str,
    target: Mapping[str, Any] | None,
    config_file: str | None,
    notebook: Path,
) -> dict[str, Any]:
    """The run's result.json before any cell ran: what the recorder starts from."""
    return {
        **run_header(spec, run_dir, started),
        "created_at": started.isoformat(timespec="milliseconds"),
        "finished_at": None,
        "duration_s": None,
        "parameters": json.loads(json.dumps(_defaults(spec) | dict(params), default=str)),
        "status": "UNKNOWN",
        "exit_code": 3,
        "failed": False,
        "error": None,
        "summary": "working copy opened; no cell run yet",
        "findings": [],
        "figures": {},
        "interactive": True,
        "template": str(spec.path),
        "working_copy": notebook.name,
        "config_file": config_file,
        "server": server,
        "target": dict(target) if target is not None else None,
    }


def _defaults(spec: ReportSpec) -> dict[str, Any]:
    return {name: p.default for name, p in spec.parameters.items()}


def lab_url(notebook: Path) -> str | None:
    """The URL of ``notebook`` in a JupyterLab running on this machine whose root holds it
    (with its token), or None when none does."""
    try:
        from jupyter_server.serverapp import list_running_servers
    except ImportError:
        return None
    path = notebook.resolve()
    for info in list_running_servers():
        root = Path(str(info.get("root_dir") or info.get("notebook_dir") or "")).resolve()
        if not root.is_dir() or not path.is_relative_to(root):
            continue
        url = f"{str(info['url']).rstrip('/')}/lab/tree/{path.relative_to(root).as_posix()}"
        token = info.get("token")
        return f"{url}?token={token}" if token else url
    return None


def lab_hint(notebook: Path, reports_dir: Path) -> str:
    """How to open ``notebook`` when no JupyterLab runs: `make lab` in a checkout that holds
    it; where powrops was installed from its wheel (no Makefile), or the report archive is
    outside the checkout (`make lab` could not open it), JupyterLab on the report archive."""
    checkout = bundle.checkout()
    if checkout is not None and notebook.resolve().is_relative_to(checkout.resolve()):
        return f"start one with `make lab`, then open {relative_to_project(notebook)}"
    root, python = reports_dir.resolve(), Path(sys.executable)
    return (
        f"start one on the report archive, `{python.parent / 'jupyter'} lab "
        f"--ServerApp.root_dir={root} {' '.join(LAB_OPTIONS)}` (JupyterLab beside powrops: "
        f"`{python} -m pip install "
        f"jupyterlab`), then open {notebook.resolve().relative_to(root).as_posix()}"
    )


def relative_to_project(path: Path) -> str:
    """``path`` as `make lab` shows it (relative to the project), else absolute."""
    root = (bundle.checkout() or Path.cwd()).resolve()
    resolved = path.resolve()
    return (
        resolved.relative_to(root).as_posix()
        if resolved.is_relative_to(root)
        else os.fspath(resolved)
    )
