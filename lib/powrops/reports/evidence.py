"""The evidence of a runbook run by hand: the kernel records each cell as it runs.

A working copy's first cell calls :func:`start`. From then on, after every cell the kernel
writes into the run folder, each atomically: ``notebook.ipynb``, every cell run in the order
it ran (a cell run twice appears twice), with its source, the outputs the page showed (every
message the kernel sent for it: streams, displays, results, errors), the answers typed at its
prompts and its times, each step headed by the template's Markdown; ``result.json``, with the
parameters as run, the answers typed (each with ``cell``, the cell's index in the working copy,
``archived_cell``, its index in ``notebook.ipynb``, and ``execution_count``, the kernel's run
counter), the OS user, start and duration, the result the notebook recorded, and a
failed status with the error when the last cell run stopped on one; and ``report.html``,
rendered as the runner renders a papermill run. None of it depends on the editor saving.

The outputs are taken from the kernel's own messages: the kernel's session is wrapped so that
every output message it sends on behalf of the running cell is kept too (the messages still
go to the page unchanged). The kernel's ``input`` is wrapped for each cell the same way.
"""

from __future__ import annotations

import builtins
import getpass
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat

from powrops import config, db
from powrops.config import DEFAULT_SERVER, SERVER_ENV
from powrops.errors import PowropsError, ReportError, interrupts_held, notebook_text
from powrops.findings import Severity
from powrops.gate import WORKING_COPY_ENV, decisions
from powrops.reports.catalog import NOTEBOOK_FILE, RESULT_FILE
from powrops.reports.index import build_index
from powrops.reports.record import RECORDED_FILE
from powrops.reports.runner import versions, write_archive
from powrops.reports.spec import ReportSpec, read_spec

#: The kernel's output messages that belong in a cell's outputs.
OUTPUT_TYPES = frozenset(
    {"stream", "display_data", "execute_result", "error", "update_display_data", "clear_output"}
)
CONFIG_ENV = "POWROPS_CONFIG"
#: Said under a cell when the Stop button was pressed after its code ended, while its
#: evidence was written.
INTERRUPTED_AFTER = (
    "Interrupted after this cell had finished (while its evidence was written, which is "
    "complete): the cells queued after it were not run.\n"
)


def start(run_dir: str | Path) -> None:
    """Record every cell this kernel runs from now on into ``run_dir`` (a working copy's run
    folder). Calling it again for the same folder changes nothing."""
    from IPython import get_ipython

    folder = Path(run_dir).resolve()
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        raise ReportError("evidence.start() records a Jupyter kernel's cells; none runs here")
    running = getattr(shell, "powrops_evidence", None)
    if isinstance(running, Recorder):
        if running.run_dir != folder:
            raise ReportError(f"this kernel already records into {running.run_dir}")
        return
    recorder = Recorder(folder, _opened(folder), shell)
    shell.powrops_evidence = recorder
    recorder.attach()
    print(f"Recording this run as evidence in {folder}")


def _opened(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RESULT_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReportError(f"{path} is not a working copy's result ({exc})") from exc
    if not isinstance(data, dict) or not data.get("interactive"):
        raise ReportError(f"{run_dir} is not a working copy's run folder")
    return data


class Recorder:
    """Keeps the cells a kernel runs and writes the run's evidence after each."""

    def __init__(self, run_dir: Path, opened: dict[str, Any], shell: Any) -> None:
        self.run_dir = run_dir
        self.result = opened
        self.shell = shell
        self.spec: ReportSpec = read_spec(Path(opened["template"]), opened["kind"])
        copy = _working_copy(run_dir / str(opened["working_copy"]))
        self.template = _Template(list(copy.cells))
        self.record = _earlier_record(run_dir, copy.metadata)
        self.shown: set[int] = set()
        self.answers: list[dict[str, Any]] = list(opened.get("answers") or [])
        self.lock = threading.Lock()
        self.outputs: list[dict[str, Any]] = []
        self.cell: dict[str, Any] = {}
        self.parent = ""
        self.secrets: list[str] = []

    # -- hooks -------------------------------------------------------------------------------

    def attach(self) -> None:
        """Pass the configuration on, wrap the session and register the cell events; the cell
        calling :func:`start` is recorded from here."""
        os.environ[WORKING_COPY_ENV] = str(self.run_dir)
        os.environ[SERVER_ENV] = str(self.result["server"])
        if self.result.get("config_file"):
            os.environ[CONFIG_ENV] = str(self.result["config_file"])
        self.secrets = _secrets()
        session = self.shell.kernel.session
        session.send = self._sending(session.send)
        self.shell.events.register("pre_run_cell", self.pre_run_cell)
        self.shell.events.register("post_run_cell", self.post_run_cell)
        self._begin(self._current_parent(), time.time())

    def pre_run_cell(self, info: Any) -> None:
        self._begin(self._current_parent(), time.time())
        builtins.input = self._asking(builtins.input)

    def post_run_cell(self, result: Any) -> None:
        sys.stdout.flush()  # the kernel sends buffered output from its IO thread: wait for it
        sys.stderr.flush()
        with self.lock:
            outputs, self.outputs, self.parent = self.outputs, [], ""
        with interrupts_held((signal.SIGINT,)) as held:
            self._add_cell(result, outputs)
            self.write()
        if held:
            self._interrupted_after(result)

    def _interrupted_after(self, result: Any) -> None:
        """The Stop button pressed while the evidence of a finished cell was written: say so
        under the cell (on the page and in the archive), and end the cell's run with the
        interrupt, so that the kernel drops the cells queued after it (Run All) as it does
        for an interrupt inside a cell."""
        print(INTERRUPTED_AFTER, end="", flush=True)
        cell = self.record.cells[-1]
        cell.outputs.append(
            nbformat.v4.new_output("stream", name="stdout", text=INTERRUPTED_AFTER)  # type: ignore[no-untyped-call]
        )
        with interrupts_held((signal.SIGINT,)):
            self.write()
        result.error_in_exec = KeyboardInterrupt(INTERRUPTED_AFTER.strip())
        self.shell._last_traceback = [INTERRUPTED_AFTER.strip()]  # the reply's, as shown

    def _current_parent(self) -> str:
        header = self.shell.kernel.get_parent().get("header", {})
        return str(header.get("msg_id", ""))

    def _begin(self, parent: str, at: float) -> None:
        with self.lock:
            self.parent, self.outputs = parent, []
        self.cell = {"started": at, "answers": [], "request": self.shell.kernel.get_parent()}

    def _sending(self, send: Callable[..., Any]) -> Callable[..., Any]:
        def sending(*args: Any, **kwargs: Any) -> Any:
            msg = send(*args, **kwargs)
            self._observe(msg)
            return msg

        return sending

    def _observe(self, msg: Any) -> None:
        if not isinstance(msg, Mapping):
            return
        kind = msg.get("header", {}).get("msg_type") or msg.get("msg_type")
        parent = msg.get("parent_header", {}).get("msg_id")
        with self.lock:
            if kind in OUTPUT_TYPES and parent and parent == self.parent:
                self.outputs.append({"msg_type": kind, "content": dict(msg["content"])})

    def _asking(self, ask: Callable[..., str]) -> Callable[..., str]:
        def asking(prompt: object = "") -> str:
            answer = ask(prompt)
            at = datetime.now(UTC).isoformat(timespec="milliseconds")
            typed = {"prompt": str(prompt), "answer": answer, "at": at}
            self.cell["answers"].append(typed)
            stdin = {"name": "stdout", "text": f"{prompt}{answer}\n"}
            with self.lock:
                self.outputs.append({"msg_type": "stream", "content": stdin})
            return answer

        asking.__wrapped__ = ask  # type: ignore[attr-defined]
        return asking

    # -- the record --------------------------------------------------------------------------

    def _add_cell(self, result: Any, messages: list[dict[str, Any]]) -> None:
        source = str(result.info.raw_cell)
        ended = time.time()
        position = self._position(source, self.cell["request"])
        self._heading(position)
        cell = nbformat.v4.new_code_cell(source)  # type: ignore[no-untyped-call]
        cell.execution_count = result.execution_count
        cell.outputs = _outputs(messages)
        error = result.error_in_exec or result.error_before_exec
        cell.metadata["powrops"] = {
            "started_at": _iso(self.cell["started"]),
            "duration_s": round(ended - self.cell["started"], 3),
            "answers": self.cell["answers"],
            "status": "error" if error is not None else "ok",
        }
        self.record.cells.append(cell)
        index = len(self.record.cells) - 1
        where = {"cell": position, "archived_cell": index, "execution_count": cell.execution_count}
        self.answers.extend({**where, **a} for a in self.cell["answers"])
        self._update_result(index, cell, error, ended)

    def _position(self, source: str, parent: Mapping[str, Any]) -> int | None:
        """The cell's index in the working copy (by JupyterLab's cell id, else its source), or
        None for a cell the copy did not have."""
        cell_id = parent.get("metadata", {}).get("cellId")
        index = self.template.by_id.get(cell_id) if cell_id else None
        return index if index is not None else self.template.by_source.get(source.strip())

    def _heading(self, index: int | None) -> None:
        """The template's Markdown before the cell at ``index``, the first time it runs."""
        if index is None or index in self.shown:
            return
        self.shown.add(index)
        for markdown in self.template.markdown_before(index):
            self.record.cells.append(nbformat.v4.new_markdown_cell(markdown))  # type: ignore[no-untyped-call]

    def _update_result(self, index: int, cell: Any, error: Any, ended: float) -> None:
        started = _first_start(self.record.cells)
        self.result.update(
            started_at=_iso(started),
            finished_at=_iso(ended),
            duration_s=round(ended - started, 3),
            parameters=self._parameters(),
            user=getpass.getuser(),
            cells_run=sum(1 for c in self.record.cells if c.cell_type == "code"),
            answers=self.answers,
            versions=versions(),
        )
        self.result.update(_outcome(self.run_dir, index, cell, error))

    def _parameters(self) -> dict[str, Any]:
        """The parameters as the kernel holds them now (as injected, or as changed since)."""
        names = self.result.get("parameters", {})
        space = self.shell.user_ns
        values = {name: space.get(name, value) for name, value in names.items()}
        return dict(json.loads(json.dumps(values, default=str)))

    def write(self) -> None:
        """Write notebook.ipynb, report.html and result.json; rebuild the index."""
        write_archive(self.run_dir, self.spec, self.record, dict(self.result), self.secrets)
        named = self.result["server"] != DEFAULT_SERVER  # <archive>/[<server>/]<name>/<run>
        build_index(self.run_dir.parents[2 if named else 1])


class _Template:
    """The working copy's cells as created: which code cell is which, and its Markdown."""

    def __init__(self, cells: list[Any]) -> None:
        self.cells = cells
        self.by_id = {c.get("id"): i for i, c in enumerate(cells) if c.cell_type == "code"}
        self.by_source = {
            str(c.source).strip(): i for i, c in enumerate(cells) if c.cell_type == "code"
        }

    def markdown_before(self, index: int) -> list[str]:
        found: list[str] = []
        for cell in reversed(self.cells[:index]):
            if cell.cell_type != "markdown":
                break
            found.insert(0, str(cell.source))
        return found


def _working_copy(path: Path) -> Any:
    """The working copy as its kernel starts (its cells head the record's steps)."""
    try:
        return nbformat.read(path, as_version=4)  # type: ignore[no-untyped-call]
    except (OSError, ValueError) as exc:
        raise ReportError(f"cannot read the working copy {path}: {exc}") from exc


def _outputs(messages: list[dict[str, Any]]) -> list[Any]:
    """The cell's outputs as the page shows them: streams joined, clears and updates applied."""
    outputs: list[Any] = []
    shown: dict[str, Any] = {}  # display id -> its output
    for message in messages:
        kind, content = message["msg_type"], message["content"]
        display_id = content.get("transient", {}).get("display_id")
        if kind == "clear_output":
            outputs = []
        elif kind == "update_display_data":
            if display_id in shown:
                shown[display_id]["data"] = content.get("data", {})
        elif kind == "stream" and outputs and _same_stream(outputs[-1], content):
            outputs[-1]["text"] += content.get("text", "")
        else:
            msg = {"header": {"msg_type": kind}, "content": content}
            outputs.append(nbformat.v4.output_from_msg(msg))  # type: ignore[no-untyped-call]
            if display_id:
                shown[display_id] = outputs[-1]
    return outputs


def _same_stream(last: Any, content: Mapping[str, Any]) -> bool:
    return bool(last.get("output_type") == "stream" and last.get("name") == content.get("name"))


def _outcome(run_dir: Path, index: int, cell: Any, error: Any) -> dict[str, Any]:
    """Status, findings and error: the notebook's record; failed when the last cell failed."""
    recorded = _recorded(run_dir)
    outcome: dict[str, Any] = {
        "summary": recorded.get("summary"),
        "period": recorded.get("period"),
        "findings": recorded.get("findings", []),
        "figures": recorded.get("figures", {}),
        "confirmations": decisions(run_dir),  # kept as taken, recorded or not
        "failed": error is not None,
        "error": None,
        "recorded": bool(recorded),
    }
    status = Severity.parse(recorded["status"]) if "status" in recorded else Severity.UNKNOWN
    if error is not None:
        status = Severity.UNKNOWN
        outcome["error"] = {
            "ename": type(error).__name__,
            "evalue": notebook_text(error),
            "cell_index": index,
            "execution_count": cell.execution_count,
        }
    elif not recorded:
        outcome["summary"] = "in progress: no result recorded yet"
    outcome.update(status=status.name, exit_code=int(status))
    return outcome


def _recorded(run_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((run_dir / RECORDED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _secrets() -> list[str]:
    """The configuration's secrets, kept out of the evidence (none when it cannot load)."""
    try:
        return db.secrets(config.settings())
    except PowropsError:
        return []


def _earlier_record(run_dir: Path, metadata: Any) -> Any:
    """The cells an earlier kernel recorded in this folder (its evidence goes on, a restarted
    kernel's cells after it, under a note saying so), else a new record."""
    record = nbformat.v4.new_notebook(metadata=metadata)  # type: ignore[no-untyped-call]
    try:
        earlier = nbformat.read(run_dir / NOTEBOOK_FILE, as_version=4)  # type: ignore[no-untyped-call]
    except (OSError, ValueError):
        return record
    if any(c.cell_type == "code" for c in earlier.cells):
        at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        note = (
            f"*A new kernel went on with this run at {at}; the cells above ran in an earlier one.*"
        )
        record.cells = [*earlier.cells, nbformat.v4.new_markdown_cell(note)]  # type: ignore[no-untyped-call]
    return record


def _first_start(cells: list[Any]) -> float:
    for cell in cells:
        started = cell.get("metadata", {}).get("powrops", {}).get("started_at")
        if started:
            return datetime.fromisoformat(started).timestamp()
    return time.time()


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
