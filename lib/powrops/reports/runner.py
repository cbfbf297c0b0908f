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

import ast
import contextlib
import functools
import hashlib
import html
import itertools
import json
import os
import platform
import queue
import re
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, quote_plus

from powrops import __version__, bundle, gate
from powrops.bundle import Folder
from powrops.config import DEFAULT_SERVER, SERVER_ENV
from powrops.errors import Interrupted, ParameterError, ReportError
from powrops.findings import Severity
from powrops.format import describe_target
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

if TYPE_CHECKING:
    import nbformat

    from powrops.reports.remote import ReportArchive

RUN_ID_ENV = "POWROPS_RUN_ID"
KINDS: dict[Folder, str] = {"notebooks": "scheduled", "runbooks": "runbook"}
REDACTED = "[REDACTED]"
NO_RESULT = "notebook did not record a result"
ENGINE = "powrops"
#: What a report's kernel starts with besides its kernelspec: no IPython history database
#: (a report never reads its history; JupyterLab's kernels, on the same spec, keep theirs).
KERNEL_OPTIONS = ("--HistoryManager.enabled=False",)
#: The module a report's kernel loads its libraries with while it waits (:func:`preload_options`).
PRELOAD = "powrops.reports.preload"
#: How often a run looks whether its killed kernel is gone (seconds).
KILL_POLL_S = 0.005
#: How long a new kernel's client waits for a message on IOPub (jupyter_client's value).
IOPUB_QUIET_S = 0.2
#: How a report's kernel starts instead of ``-m ipykernel_launcher``: as that module does,
#: but with debugpy marked unavailable, so that ipykernel does not load it (and pydevd) at
#: start for a debugger only a JupyterLab session could attach to; papermill never does. A
#: fifth of the kernel's start. JupyterLab's kernels, on the same kernelspec, keep theirs.
REPORT_LAUNCHER = (
    "import sys\n"
    "if sys.path[0] == '':\n"
    "    del sys.path[0]\n"
    "sys.modules['debugpy'] = None\n"
    "from ipykernel.kernelapp import launch_new_instance\n"
    "launch_new_instance()\n"
)

# jupyter_core warns on every start on machines without a per-user runtime directory (cron,
# systemd services, containers); it falls back to a private temporary directory, which is fine.
warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


@dataclass(frozen=True)
class ReportParameter:
    """One parameter of a report notebook, from its ``parameters`` cell."""

    name: str
    type_name: str
    default: Any
    default_source: str
    help: str = ""

    def describe(self) -> str:
        return f"{self.name} ({self.type_name}, default {self.default_source})"


@dataclass(frozen=True)
class ReportSpec:
    """A report notebook found in the project: scheduled report or runbook."""

    name: str
    path: Path
    kind: str
    description: str
    parameters: dict[str, ReportParameter] = field(default_factory=dict)

    @property
    def hide_code(self) -> bool:
        return self.kind == "scheduled"


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


# --- discovery -----------------------------------------------------------------------------


def discover(root: Path | None = None) -> dict[str, ReportSpec]:
    """All report notebooks: ``notebooks/*.ipynb`` and ``runbooks/*.ipynb`` under ``root``,
    else those of the checkout or of the installed package (:mod:`powrops.bundle`)."""
    specs: dict[str, ReportSpec] = {}
    for path, kind in _notebooks(root):
        if path.stem in specs:
            raise ReportError(_used_twice(path.stem, [specs[path.stem].path, path]))
        specs[path.stem] = read_spec(path, kind)
    return specs


def find(name: str, root: Path | None = None) -> ReportSpec:
    """The report ``name``, as :func:`discover` finds it, reading only its own notebook."""
    return read_spec(*locate(name, root))


def locate(name: str, root: Path | None = None) -> tuple[Path, str]:
    """The path and kind of report ``name``'s notebook, without reading it."""
    found = [(path, kind) for path, kind in _notebooks(root) if path.stem == name]
    if not found:
        available = ", ".join(sorted({path.stem for path, _ in _notebooks(root)})) or "none"
        raise ReportError(f"unknown report {name!r}; available reports: {available}")
    if len(found) > 1:
        raise ReportError(_used_twice(name, [path for path, _ in found]))
    return found[0]


def _notebooks(root: Path | None) -> Iterator[tuple[Path, str]]:
    """Every report notebook's path and kind, scheduled reports first."""
    for folder_name, kind in KINDS.items():
        folder = root / folder_name if root is not None else bundle.folder(folder_name)
        for path in sorted(folder.glob("*.ipynb")):
            if not path.name.startswith("."):
                yield path, kind


def _used_twice(name: str, paths: list[Path]) -> str:
    return f"report name {name!r} is used twice: {paths[0].resolve()} and {paths[1]}"


def read_spec(path: Path, kind: str) -> ReportSpec:
    """The description and parameters of one notebook."""
    try:
        nb = read_notebook(path)
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read notebook {path}: {exc}") from exc
    return ReportSpec(
        name=path.stem,
        path=path.resolve(),
        kind=kind,
        description=_description(nb),
        parameters=_parameters(path),
    )


def _description(nb: nbformat.NotebookNode) -> str:
    """The first heading of the first markdown cell, without its ``#`` marks."""
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for line in str(cell.source).splitlines():
            if line.lstrip().startswith("#"):
                return line.strip().lstrip("#").strip()
        return ""
    return ""


def _parameters(path: Path) -> dict[str, ReportParameter]:
    import papermill

    found = papermill.inspect_notebook(str(path))
    return {name: _parameter(name, info) for name, info in found.items()}


def _parameter(name: str, info: Mapping[str, Any]) -> ReportParameter:
    source = str(info.get("default", ""))
    try:
        default = ast.literal_eval(source)
        literal = True
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        default, literal = None, False
    inferred = str(info.get("inferred_type_name") or "")
    if literal and default is not None:
        type_name = type(default).__name__
    elif inferred in _CONVERTERS:
        type_name = inferred
    else:
        type_name = "str"
    return ReportParameter(name, type_name, default, source, str(info.get("help") or ""))


# --- parameters ----------------------------------------------------------------------------


def _to_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in {"true", "yes", "on", "1"}:
        return True
    if value in {"false", "no", "off", "0"}:
        return False
    raise ValueError("expected true/false, yes/no, on/off or 1/0")


def _literal_of(kind: type) -> Any:
    def convert(text: str) -> Any:
        value = ast.literal_eval(text)
        if not isinstance(value, kind):
            raise ValueError(f"expected a {kind.__name__} literal")
        return value

    return convert


_CONVERTERS: dict[str, Any] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": _to_bool,
    "list": _literal_of(list),
    "dict": _literal_of(dict),
    "tuple": _literal_of(tuple),
}


def coerce_parameters(spec: ReportSpec, given: Mapping[str, Any]) -> dict[str, Any]:
    """Check names against the notebook's parameters and convert string values.

    Strings (as typed on the command line) become the type of the parameter's default;
    other values are passed through as given.
    """
    result: dict[str, Any] = {}
    for name, value in given.items():
        param = spec.parameters.get(name)
        if param is None:
            known = ", ".join(p.describe() for p in spec.parameters.values()) or "none"
            raise ParameterError(
                f"unknown parameter {name!r} for report {spec.name!r}; its parameters are: {known}",
                parameter=name,
            )
        result[name] = _convert(spec, param, value)
    return result


def _convert(spec: ReportSpec, param: ReportParameter, value: Any) -> Any:
    if not isinstance(value, str) or param.type_name == "str":
        return value
    converter = _CONVERTERS.get(param.type_name, str)
    try:
        return converter(value)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise ParameterError(
            f"parameter {param.name!r} of report {spec.name!r} expects {param.type_name} "
            f"(default {param.default_source}), got {value!r}: {exc}",
            parameter=param.name,
        ) from exc


# --- kernel --------------------------------------------------------------------------------


def kernel_name() -> str:
    """The kernelspec name for this interpreter: ``powrops-<hash of sys.executable>``."""
    digest = hashlib.sha256(sys.executable.encode()).hexdigest()[:10]
    return f"powrops-{digest}"


def ensure_kernel() -> str:
    """Install (if needed) a kernelspec running this interpreter; return its name.

    papermill's default ``python3`` kernel is resolved through Jupyter's search path and may
    start another interpreter without powrops, so reports run on this one instead.
    """
    from jupyter_core.paths import jupyter_data_dir

    name = kernel_name()
    spec = {
        # The kernel listens on 127.0.0.1 only; its TCP transport warning is noise in reports.
        "argv": [
            sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
            "--IPKernelApp.log_level=ERROR",
        ],
        "display_name": f"Python {platform.python_version()} (powrops)",
        "language": "python",
        "metadata": {"debugger": True},
    }
    bases = [
        Path(sys.prefix) / "share" / "jupyter" / "kernels",
        Path(jupyter_data_dir()) / "kernels",
    ]
    problems = []
    for base in bases:
        try:
            _write_if_changed(base / name / "kernel.json", spec)
            return name
        except OSError as exc:
            problems.append(f"{base}: {exc}")
    raise ReportError("cannot install the powrops kernelspec: " + "; ".join(problems))


def _write_if_changed(path: Path, data: Mapping[str, Any]) -> None:
    text = json.dumps(data, indent=1) + "\n"
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


# --- redaction -----------------------------------------------------------------------------

_URL_PASSWORD = re.compile(
    r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s:/@'\"<>]+:)(?P<password>[^\s@/'\"<>]+)(?=@)"
)


_PLACEHOLDER = re.compile(r"^(?:\{[^{}]*\}|\$\{?\w+\}?|\*+|%\(?\w*\)?s|\[REDACTED\])$")


def _variants(secrets: Iterable[str]) -> list[str]:
    """Each secret as it may appear in text, HTML, JSON and URLs; longest first."""
    forms: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        forms.update(
            {
                secret,
                html.escape(secret),
                html.escape(secret, quote=False),
                json.dumps(secret)[1:-1],
                json.dumps(secret, ensure_ascii=False)[1:-1],
                quote(secret, safe=""),
                quote_plus(secret),
            }
        )
    return sorted(forms, key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret and every password in a ``scheme://user:password@`` URL
    replaced by ``[REDACTED]``.

    Placeholders in code (``{password}``, ``${PGPASSWORD}``, ``%s``, ``***``) are not secrets
    and stay, so a runbook's code still reads as written.
    """
    for form in _variants(secrets):
        text = text.replace(form, REDACTED)
    return _URL_PASSWORD.sub(_redact_url_password, text)


def _redact_url_password(match: re.Match[str]) -> str:
    if _PLACEHOLDER.match(match["password"]):
        return match[0]
    return match["head"] + REDACTED


def _redact_tree(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, Mapping):
        return {k: _redact_tree(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_tree(v, secrets) for v in value]
    return value


# --- running -------------------------------------------------------------------------------


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
        kernel, error = _started(project, env, preload_options(path))
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
            _stop_kernel(kernel)
    result = _result(spec, run_dir, params, started, time.monotonic() - clock, error)
    result["server"] = server
    result["every_s"] = every_s
    result["target"] = dict(target) if target is not None else None
    write_archive(run_dir, spec, nb, result, list(secrets))
    build_index(archive)
    if interrupt is not None:  # what ran is archived here; `powrops report sync` uploads it
        raise interrupt.leaving(f"{name}: the cells that ran are archived as UNKNOWN in {run_dir}")
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

    nb = nbformat.from_dict(_redact_tree(nb, secrets))  # type: ignore[no-untyped-call]
    text = nbformat.writes(nb)  # type: ignore[no-untyped-call]
    write_text(run_dir / NOTEBOOK_FILE, redact(text, secrets))
    page = _render(nb, spec, result)  # may mark the run failed if rendering fails
    write_text(run_dir / HTML_FILE, redact(page, secrets))
    write_json(run_dir / RESULT_FILE, _redact_tree(result, secrets))


def server_dir(archive: Path, server: str) -> Path:
    """The folder of a server's reports: the archive itself for ``default``."""
    return archive if server == DEFAULT_SERVER else archive / server


def new_run_dir(report_dir: Path, started: datetime, suffix: str = "") -> Path:
    """A fresh ``<report_dir>/<UTC timestamp>[suffix][-n]`` directory; ReportError naming
    it when the archive cannot take it (a folder another user owns, a file in the way)."""
    stamp = started.strftime("%Y%m%dT%H%M%SZ") + suffix
    for n in itertools.count(1):
        candidate = report_dir / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            report_dir.mkdir(parents=True, exist_ok=True)
            candidate.mkdir()
        except FileExistsError:
            continue
        except OSError as exc:
            raise ReportError(
                f"cannot create the run folder {candidate}: {exc.strerror}; the report "
                "archive (reports.dir) must be a folder the user running powrops can write"
            ) from exc
        return candidate
    raise AssertionError("unreachable")


@contextmanager
def _environ(updates: Mapping[str, str]) -> Iterator[None]:
    """Set environment variables for the duration (the kernel inherits os.environ)."""
    saved = {key: os.environ.get(key) for key in updates}
    os.environ.update(updates)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


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


def preload_options(path: Path) -> list[str]:
    """The kernel option that has it load, while it waits, what the notebook at ``path``
    imports (and pyplot when a cell draws a figure): :mod:`powrops.reports.preload`. None
    when the notebook cannot be read (its run reports that)."""
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        sources = ["".join(c["source"]) for c in cells if c.get("cell_type") == "code"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    modules: dict[str, None] = {}
    figures = False
    for source in sources:
        for statement in _statements(source):
            modules.update(dict.fromkeys(_imported(statement)))
            figures = figures or _draws(statement)
    line = f"__import__({PRELOAD!r}, fromlist=['start']).start({tuple(modules)!r}, {figures})"
    return [f"--IPKernelApp.exec_lines={line}"]


def _statements(source: str) -> list[ast.stmt]:
    """A cell's top-level statements; none when it is not plain Python (magics)."""
    try:
        return ast.parse(source).body
    except SyntaxError:
        return []


def _imported(statement: ast.stmt) -> list[str]:
    """The modules an import statement loads (``from a import b``: ``a`` and ``a.b``, which
    may be a module)."""
    if isinstance(statement, ast.Import):
        return [alias.name for alias in statement.names]
    if isinstance(statement, ast.ImportFrom) and statement.module and not statement.level:
        return [statement.module] + [f"{statement.module}.{a.name}" for a in statement.names]
    return []


def _draws(statement: ast.stmt) -> bool:
    """Whether a top-level statement shows a figure (``show(...)``) in every run."""
    call = statement.value if isinstance(statement, ast.Expr) else None
    return isinstance(call, ast.Call) and getattr(call.func, "id", None) == "show"


def _started(
    cwd: Path, env: Mapping[str, str], options: list[str]
) -> tuple[Any, dict[str, Any] | None]:
    """:func:`_start_kernel`'s manager, or None and the run's error when the kernel cannot be
    started (its kernelspec is missing, names a program that does not exist, cannot be
    installed): a run that failed before its first cell, archived as such like one whose
    kernel dies. An interrupt is not caught (nor is any kernel left behind)."""
    try:
        return _start_kernel(cwd, env, options), None
    except Exception as exc:
        value = f"the report kernel {kernel_name()} could not be started: {exc}"
        return None, {"ename": type(exc).__name__, "evalue": value, "cell_index": None}


def _start_kernel(cwd: Path, env: Mapping[str, str], options: list[str]) -> Any:
    """Start the report kernel (:func:`ensure_kernel`, with :data:`KERNEL_OPTIONS` and
    ``options``) in ``cwd`` with ``env`` added to this process's environment; its manager,
    which :func:`_execute` hands to papermill and :func:`_stop_kernel` stops. It does not
    wait for the kernel."""
    from jupyter_core.utils import run_sync

    manager = _kernel_manager()(kernel_name=ensure_kernel())
    arguments = [*KERNEL_OPTIONS, *options]
    try:
        with _environ(env):  # the kernel inherits os.environ
            run_sync(manager.start_kernel)(extra_arguments=arguments, cwd=str(cwd))
    except BaseException:  # an interrupt while it starts leaves no kernel behind either
        _stop_kernel(manager)
        raise
    return manager


def _stop_kernel(manager: Any) -> None:
    """Stop the kernel at once if it still runs (after a refused run, an interrupt, an error:
    papermill stops it itself after the last cell)."""
    from jupyter_core.utils import run_sync

    if manager.has_kernel:
        run_sync(manager.shutdown_kernel)(now=True)


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
    :func:`_start_kernel`, is stopped at once when the last cell is done: everything it had to
    do was in the cells.
    """
    import papermill

    error: dict[str, Any] | None = None
    interrupt: Interrupted | None = None
    kept: list[Any] = []
    try:
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


@functools.cache
def _kernel_manager() -> type:
    """jupyter_client's kernel manager for report runs: it looks for kernelspecs on Jupyter's
    path, where :func:`ensure_kernel` writes the report kernel's, and not also in IPython's
    profile folder, which takes importing IPython into the command to find. A killed kernel
    is waited for in steps of :data:`KILL_POLL_S`, not jupyter_client's 100 ms: it is gone
    within a few milliseconds, and every run waits for it. Its clients are
    :func:`_kernel_client`'s."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import AsyncKernelManager
    from jupyter_core.paths import jupyter_path
    from traitlets import default

    client = _kernel_client()

    class ReportKernelManager(AsyncKernelManager):
        @default("kernel_spec_manager")
        def _kernel_spec_manager_default(self) -> KernelSpecManager:
            dirs = jupyter_path("kernels")
            return KernelSpecManager(data_dir=self.data_dir, kernel_dirs=dirs)

        @default("client_factory")
        def _client_factory_default(self) -> type:
            return client

        async def _async_wait(self, pollinterval: float = 0.1) -> None:
            await super()._async_wait(pollinterval=min(pollinterval, KILL_POLL_S))

        def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
            return without_debugger(super().format_kernel_cmd(extra_arguments))

    return ReportKernelManager


def _kernel_client() -> type:
    """jupyter_client's kernel client for report runs, whose wait for a new kernel ends when
    the kernel has answered ``kernel_info`` and its IOPub channel is connected: jupyter_client's
    then reads IOPub until it has been quiet for :data:`IOPUB_QUIET_S`, a fifth of a second of
    every run in which the kernel could have run cells. What is left there (the status
    messages of that request) is never taken for a cell's output: nbclient reads only the
    messages of the requests it sends."""
    from jupyter_client.asynchronous.client import AsyncKernelClient

    class ReportKernelClient(AsyncKernelClient):
        async def wait_for_ready(self, timeout: float | None = None) -> None:
            deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
            while True:
                self.kernel_info()
                try:
                    reply = await self.shell_channel.get_msg(timeout=1)
                except queue.Empty:
                    reply = None
                if reply is not None and reply["msg_type"] == "kernel_info_reply":
                    try:  # IOPub connected: the request's status arrives there
                        await self.iopub_channel.get_msg(timeout=IOPUB_QUIET_S)
                    except queue.Empty:
                        pass
                    else:
                        self._handle_kernel_info_reply(reply)
                        return
                if not await self.is_alive():
                    raise RuntimeError("Kernel died before replying to kernel_info")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Kernel didn't respond in {timeout} seconds")

    return ReportKernelClient


def without_debugger(command: list[str]) -> list[str]:
    """A kernel command line with ``-m ipykernel_launcher`` run as :data:`REPORT_LAUNCHER`
    (any other command as it is)."""
    for at in range(len(command) - 1):
        if command[at : at + 2] == ["-m", "ipykernel_launcher"]:
            return [*command[:at], "-c", REPORT_LAUNCHER, *command[at + 2 :]]
    return command


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
