"""The report kernel: its kernelspec on this interpreter, and the kernel a run starts.

:func:`ensure_kernel` installs the kernelspec. :func:`started` starts a run's kernel, with
:data:`KERNEL_OPTIONS`, without debugpy (:data:`REPORT_LAUNCHER`) and with the startup line of
:func:`preload_options`, on jupyter_client's manager and client for report runs
(:func:`_kernel_manager`, :func:`_kernel_client`); :func:`stop_kernel` stops it, and an
interrupted run's kernel first ends the cell it runs (:func:`interrupting`). JupyterLab's
kernels, on the same kernelspec, keep what a report run leaves out.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import platform
import queue
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from powrops.errors import ReportError
from powrops.held import RELEASE_CODE

#: What a report's kernel starts with besides its kernelspec: no IPython history database
#: (a report never reads its history; JupyterLab's kernels, on the same spec, keep theirs).
KERNEL_OPTIONS = ("--HistoryManager.enabled=False",)
#: The module a report's kernel loads its libraries with while it waits (:func:`preload_options`).
PRELOAD = "powrops.reports.preload"
#: How often a run looks whether its killed kernel is gone (seconds).
KILL_POLL_S = 0.005
#: How long a new kernel's client waits for a message on IOPub (jupyter_client's value).
IOPUB_QUIET_S = 0.2
#: How long an interrupted run lets its kernel finish the cell it interrupted (the cell's
#: ``finally`` blocks release what it holds: a test restore's scratch server and copy) before
#: the kernel is killed.
INTERRUPT_GRACE_S = 60.0
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


def started(
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
    which :func:`~powrops.reports.runner._execute` hands to papermill and :func:`stop_kernel`
    stops. It does not wait for the kernel."""
    from jupyter_core.utils import run_sync

    manager = _kernel_manager()(kernel_name=ensure_kernel())
    arguments = [*KERNEL_OPTIONS, *options]
    try:
        with _environ(env):  # the kernel inherits os.environ
            run_sync(manager.start_kernel)(extra_arguments=arguments, cwd=str(cwd))
    except BaseException:  # an interrupt while it starts leaves no kernel behind either
        stop_kernel(manager)
        raise
    return manager


@contextmanager
def interrupting(manager: Any) -> Iterator[None]:
    """While a run's cells execute, SIGINT and SIGTERM mark ``manager`` interrupted before the
    handler in place raises: the kernel's shutdown then first interrupts the running cell and
    waits for it to end (:func:`_settle`), so that what the cell holds is released as in a
    command run without a notebook, instead of killing the kernel in the middle of it. Only
    in the main thread, and only over a handler that is a function (not ignored, not the
    default action)."""
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            handler = signal.getsignal(signum)
            if callable(handler):
                previous[signum] = signal.signal(signum, _marking(manager, handler))
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _marking(manager: Any, handler: Any) -> Any:
    def mark(signum: int, frame: Any) -> Any:
        manager.interrupted = True
        return handler(signum, frame)

    return mark


async def _settle(manager: Any, grace: float) -> bool:
    """Interrupt the kernel's running cell and wait, at most ``grace`` seconds, until the
    kernel has finished it: its reply to a request sent after the interrupt comes once the
    cell, its ``finally`` blocks included, has ended (a kernel answers shell requests in
    order). Then the kernel releases what it holds between cells (a drill's scratch cluster:
    :mod:`powrops.held`), in what is left of the grace. True when both came; False when the
    grace ran out or the kernel died."""
    await manager.interrupt_kernel()
    client = manager.client()
    client.start_channels()
    deadline = time.monotonic() + grace
    try:
        if not await _reply(manager, client, client.kernel_info(), deadline):
            return False
        request = client.execute(RELEASE_CODE, silent=True, store_history=False)
        return await _reply(manager, client, request, deadline)
    finally:
        client.stop_channels()


async def _reply(manager: Any, client: Any, request: str, deadline: float) -> bool:
    """Whether the kernel replied to ``request`` before ``deadline`` (False: it died)."""
    while (left := deadline - time.monotonic()) > 0:
        try:
            reply = await client.shell_channel.get_msg(timeout=min(left, 1.0))
        except queue.Empty:
            if not await manager.is_alive():
                return False
            continue
        if reply["parent_header"].get("msg_id") == request:
            return True
    return False


def stop_kernel(manager: Any) -> None:
    """Stop the kernel at once if it still runs (after a refused run, an interrupt, an error:
    papermill stops it itself after the last cell)."""
    from jupyter_core.utils import run_sync

    if manager.has_kernel:
        run_sync(manager.shutdown_kernel)(now=True)


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

        #: Set by :func:`interrupting`; ``settled`` then says whether the interrupted cell
        #: ended within :data:`INTERRUPT_GRACE_S` (None: no interrupt to settle).
        interrupted = False
        settled: bool | None = None

        async def shutdown_kernel(  # type: ignore[override]  # the async manager's is async
            self, now: bool = False, restart: bool = False
        ) -> None:
            if self.interrupted and self.has_kernel:
                self.interrupted = False
                self.settled = await _settle(self, INTERRUPT_GRACE_S)
            await super().shutdown_kernel(now=now, restart=restart)

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
