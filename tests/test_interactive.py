"""A runbook run by hand works on a working copy in the archive and is archived as it runs.

``powrops runbook NAME`` writes the template, parameterized, into a new
``<reports>/<name>/<timestamp>-interactive/`` folder; the copy's first cell starts the kernel's
recorder, which writes ``notebook.ipynb``, ``report.html`` and ``result.json`` after every cell
from the kernel's own messages, whether or not the notebook is ever saved. The template (and
the checkout) never change. A real kernel executes the copies here (nbclient, which never
saves them either); the browser test does the same through JupyterLab and answers prompts.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from by_hand import run_by_hand
from cli_helpers import libpq, run_cli
from powrops import bundle
from powrops.reports import record, workcopy
from powrops.reports.record import RUN_DIR_ENV, WORKING_COPY_ENV

REPO = Path(__file__).resolve().parents[1]


def open_runbook(name: str, config: Path, *params: str, root: Path | None = None) -> Path:
    """``powrops runbook NAME -p ...``; the working copy it wrote."""
    env = {"POWROPS_PROJECT_ROOT": str(root)} if root else {}
    done = run_cli("--config", str(config), "runbook", name, *params, env=env)
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("working copy: "))
    # a running JupyterLab's URL, else how to start one (`make lab`, or on the archive)
    assert any(w in done.stdout for w in ("make lab", "/lab/tree/", "lab --ServerApp.root_dir="))
    return Path(line.removeprefix("working copy: "))


def execute(copy: Path, env: dict[str, str] | None = None) -> tuple[Any, str | None]:
    """Run every cell of the working copy in a real kernel, as Run All does, in its folder.
    The copy on disk is never saved; returns what the client saw and the error it stopped on."""
    nb = nbformat.read(copy, as_version=4)
    saved = dict(os.environ)
    os.environ.update(env or {})
    client = NotebookClient(
        nb, kernel_name=nb.metadata.kernelspec.name, timeout=120,
        resources={"metadata": {"path": str(copy.parent)}},
    )  # fmt: skip
    try:
        client.execute()
        error = None
    except CellExecutionError as exc:
        error = exc.ename
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return nb, error


def tiny_project(root: Path) -> Path:
    """A project with one runbook: it prints, displays, records, then stops on an error."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    params = nbformat.v4.new_code_cell('n = 1  # how many\nconfig_path = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Tiny: a runbook that stops on an error"),
        params,
        nbformat.v4.new_markdown_cell("## Say it"),
        nbformat.v4.new_code_cell(
            "from IPython.display import HTML, display\n"
            'print("hello", n)\ndisplay(HTML("<b>shown in bold</b>"))\nn * 14'
        ),
        nbformat.v4.new_code_cell('from powrops import reports\nreports.record(figures={"n": n})'),
        nbformat.v4.new_code_cell('print("before the error")\nraise RuntimeError("stopped here")'),
        nbformat.v4.new_code_cell('print("never run")'),
    ]
    (root / "runbooks").mkdir(parents=True)
    nbformat.write(nb, root / "runbooks" / "tiny.ipynb")
    (root / "powrops.toml").write_text(
        f'[state]\ndir = "{root / "state"}"\n[reports]\ndir = "{root / "reports"}"\n'
    )
    return root / "powrops.toml"


def test_a_run_that_stops_on_an_error_is_archived_failed_with_all_it_showed(
    tmp_path: Path,
) -> None:
    config = tiny_project(tmp_path)
    template = (tmp_path / "runbooks" / "tiny.ipynb").read_bytes()
    copy = open_runbook("tiny", config, "-p", "n", "3", root=tmp_path)
    run = copy.parent
    assert run.parent == tmp_path / "reports" / "tiny" and run.name.endswith("-interactive")
    opened = json.loads((run / "result.json").read_text())
    assert opened["interactive"] is True and opened["parameters"]["n"] == 3
    seen, error = execute(copy, {"POWROPS_PROJECT_ROOT": str(tmp_path)})
    assert error == "RuntimeError"

    result = json.loads((run / "result.json").read_text())
    assert result["failed"] is True and result["status"] == "UNKNOWN"
    assert (
        result["error"]["ename"] == "RuntimeError" and result["error"]["evalue"] == "stopped here"
    )
    assert result["parameters"] == {"n": 3, "config_path": str(config)}
    assert result["user"] == getpass.getuser() and result["duration_s"] > 0
    assert result["figures"] == {"n": 3}  # recorded before the error, kept
    assert result["started_at"] < result["finished_at"]

    archived = nbformat.read(run / "notebook.ipynb", as_version=4)
    ran = [c for c in archived.cells if c.cell_type == "code"]
    shown = [c for c in seen.cells if c.cell_type == "code" and c.execution_count]
    assert [c.source for c in ran] == [c.source for c in shown]
    for mine, theirs in zip(ran, shown, strict=True):  # what the page showed, output by output
        assert [_text(o) for o in mine.outputs] == [_text(o) for o in theirs.outputs]
    assert "hello 3\n" in _text(ran[3].outputs[0]) and "<b>shown in bold</b>" in str(ran[3])
    assert ran[-1].outputs[-1]["ename"] == "RuntimeError"
    assert result["error"]["cell_index"] == archived.cells.index(ran[-1])
    assert "## Say it" in [c.source for c in archived.cells if c.cell_type == "markdown"]
    assert "never run" not in (run / "notebook.ipynb").read_text()

    page = (run / "report.html").read_text()
    assert "stopped here" in page and "hello 3" in page and "shown in bold" in page
    index = (tmp_path / "reports" / "index.html").read_text()
    assert "by hand by " in index and "stopped on an error after" in index
    assert (tmp_path / "runbooks" / "tiny.ipynb").read_bytes() == template
    assert copy.read_text() == nbformat.writes(nbformat.read(copy, as_version=4))  # untouched


@pytest.mark.pg
def test_a_run_that_stops_after_a_confirmation_keeps_how_it_was_confirmed(
    migrated_db: str, tmp_path: Path
) -> None:
    """A cell failing after the name was typed (a restore refused by the server, say): the
    page's header, result.json and the index say the action was confirmed at the prompt, not
    the parameter ``confirm = False`` that decided nothing; by papermill, likewise the
    parameter that confirmed it."""
    config = tiny_project(tmp_path)
    config.write_text(config.read_text() + f'[database]\nurl = "{libpq(migrated_db)}"\n')
    nb = nbformat.read(tmp_path / "runbooks" / "tiny.ipynb", as_version=4)
    nb.cells[1].source = 'confirm = False\nconfig_path = ""'
    nb.cells[3:] = [
        nbformat.v4.new_code_cell(
            'from powrops import gate\nproceed = gate.confirm("wipe it", confirm, target="powr")'
        ),
        nbformat.v4.new_code_cell('raise RuntimeError("stopped after the confirmation")'),
    ]
    nbformat.write(nb, tmp_path / "runbooks" / "tiny.ipynb")
    copy = open_runbook("tiny", config, root=tmp_path)
    replies = run_by_hand(copy, ["powr"])
    assert replies[-1]["status"] == "error"

    result = json.loads((copy.parent / "result.json").read_text())
    assert result["failed"] is True and result["recorded"] is False
    [decided] = result["confirmations"]
    assert decided["how"] == "typed" and decided["confirmed"] is True
    page = (copy.parent / "report.html").read_text()
    assert "wipe it: confirmed, powr typed at the prompt" in page and "confirm: no" not in page

    env = {"POWROPS_PROJECT_ROOT": str(tmp_path)}
    done = run_cli("--config", str(config), "report", "run", "tiny", "-p", "confirm", "true",
                   env=env)  # fmt: skip
    assert done.returncode == 3, done.stderr
    [run] = [r for r in (tmp_path / "reports" / "tiny").iterdir() if "interactive" not in r.name]
    [decided] = json.loads((run / "result.json").read_text())["confirmations"]
    assert decided["how"] == "parameter" and decided["confirmed"] is True


def test_a_restarted_kernel_goes_on_with_the_evidence_of_the_one_before(tmp_path: Path) -> None:
    """Restart Kernel and Run All (or the copy opened again in a new session): the cells the
    first kernel ran, and the name typed at its prompt, stay in the evidence."""
    config = tiny_project(tmp_path)
    nb = nbformat.read(tmp_path / "runbooks" / "tiny.ipynb", as_version=4)
    nb.cells[1].source = 'confirm = False\nconfig_path = ""'
    nb.cells[3:] = [
        nbformat.v4.new_code_cell(
            'from powrops import gate, reports\nproceed = gate.confirm("wipe it", confirm, '
            'target="powr")\nreports.record(figures={"wiped": proceed})'
        ),
    ]
    nbformat.write(nb, tmp_path / "runbooks" / "tiny.ipynb")
    copy = open_runbook("tiny", config, root=tmp_path)
    run_by_hand(copy, ["staging"])
    first = json.loads((copy.parent / "result.json").read_text())
    assert first["status"] == "WARNING" and first["cells_run"] == 4
    run_by_hand(copy, ["powr"])  # a new kernel

    result = json.loads((copy.parent / "result.json").read_text())
    assert [a["answer"] for a in result["answers"]] == ["staging", "powr"]
    assert result["cells_run"] == 8 and result["status"] == "OK"
    assert result["started_at"] == first["started_at"]
    archived = nbformat.read(copy.parent / "notebook.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in archived.cells for o in c.get("outputs", []))
    assert "Not confirmed: wipe it was not run (typed 'staging'" in printed
    assert "Confirmed: wipe it" in printed
    assert "A new kernel went on with this run" in (copy.parent / "report.html").read_text()


def _text(output: Any) -> str:
    if output["output_type"] == "stream":
        return str(output["text"])
    if output["output_type"] == "error":
        return str(output["ename"])
    return str(output["data"].get("text/plain"))


@pytest.mark.pg
def test_a_runbook_run_from_its_working_copy_leaves_the_checkout_clean(
    migrated_db: str, tmp_path: Path
) -> None:
    from test_archival import seed

    seed(migrated_db, users=2, weeks=1)  # user 1 exists: a user of whom nothing is held stops
    before = _git_status()
    config = tmp_path / "powrops.toml"
    config.write_text(
        f'[database]\nurl = "{libpq(migrated_db)}"\n[state]\ndir = "{tmp_path / "state"}"\n'
        f'[reports]\ndir = "{tmp_path / "reports"}"\n'
    )
    copy = open_runbook("gdpr_request", config, "-p", "user_id", "1")
    _, error = execute(copy)
    assert error is None
    result = json.loads((copy.parent / "result.json").read_text())
    assert result["failed"] is False and result["recorded"] is True
    assert result["parameters"]["user_id"] == "1" and result["parameters"]["confirm"] is False
    archived = (copy.parent / "notebook.ipynb").read_text()
    assert "Acting on" in archived and "Not confirmed" in archived
    assert _git_status() == before
    assert not [line for line in _git_status().splitlines() if "runbooks/" in line]


def _git_status() -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def test_outside_a_working_copy_record_archives_nothing_and_says_how(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(RUN_DIR_ENV, raising=False)
    monkeypatch.delenv(WORKING_COPY_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    record(findings=[])._ipython_display_()
    assert "`powrops runbook NAME`" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


#: The clock a future target's error quotes, which ticks between the two commands.
_NOW = re.compile(r"\(now [0-9: -]+ UTC\)")

#: Values a runbook's notebook would refuse, each with the words of the one-line error.
BAD_PARAMETERS = [
    ("data_corruption_response", ("since_days", "-5"), "since_days must be between 0 and 3660"),
    ("point_in_time_restore", ("target_time", "notatime"), "target_time: 'notatime' is not an"),
    ("point_in_time_restore", ("target_dir", "/etc"), "target_dir /etc is not empty: refusing"),
    ("point_in_time_restore", ("target_dir", "restored"), "target_dir 'restored' is a relative"),
    ("point_in_time_restore", ("target_time", "2999-01-01"), "target_time 2999-01-01 00:00:00"),
    ("data_corruption_response", ("no_such", "1"), "unknown parameter 'no_such'"),
    ("data_corruption_response", ("since_days", "week"), "parameter 'since_days' of report"),
    ("gdpr_request", ("user_id", "0"), "user_id = 0: set user_id to the user's id"),
    ("disk_space_response", ("horizon_days", "0"), "horizon_days = 0: expected a positive"),
    ("performance_response", ("limit", str(2**63)), "of at most 1,000,000"),
    ("gdpr_request", ("user_id", str(2**63)), "(user_id = 7) of at most 9223372036854775807"),
    (
        "point_in_time_restore",
        ("target_time", "2026-01-01 00:00:00+00", "target_lsn", "0/1"),
        "choose one recovery target: target_time, target_lsn",
    ),
]


@pytest.mark.pg
@pytest.mark.parametrize(("name", "parameter", "words"), BAD_PARAMETERS)
def test_a_bad_parameter_is_refused_as_report_run_refuses_it_before_anything_is_written(
    migrated_db: str, tmp_path: Path, name: str, parameter: tuple[str, ...], words: str
) -> None:
    """``powrops runbook`` checks the parameters' values as ``report run`` does, with the same
    one line naming the parameter, exit 3, and no run folder, working copy or index."""
    config = tmp_path / "powrops.toml"
    config.write_text(
        f'[database]\nurl = "{libpq(migrated_db)}"\n[state]\ndir = "{tmp_path / "state"}"\n'
        f'[reports]\ndir = "{tmp_path / "reports"}"\n'
    )
    said = []
    for command in (["runbook", name], ["report", "run", name]):
        pairs = [("-p", *parameter[i : i + 2]) for i in range(0, len(parameter), 2)]
        done = run_cli("--config", str(config), *command, *(a for p in pairs for a in p))
        assert done.returncode == 3, (command, done.stdout, done.stderr)
        errors = [line for line in done.stderr.splitlines() if line.startswith("powrops: error:")]
        assert len(errors) == 1 and words in errors[0], (command, done.stderr)
        assert "Traceback" not in done.stderr and "working copy" not in done.stdout
        said.append(_NOW.sub("(now …)", errors[0]))
    assert said[0] == said[1]
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").iterdir())


def test_installed_from_the_wheel_it_says_how_to_open_a_copy_without_make_lab(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a database host there is no checkout and no Makefile: the hint names JupyterLab on
    the report archive and the copy's path inside it, not `make lab` and a path from the
    folder the command happened to run in."""
    copy = tmp_path / "reports" / "gdpr_request" / "20261207T190106Z-interactive" / "g.ipynb"
    monkeypatch.chdir("/")
    monkeypatch.setattr(bundle, "checkout", lambda: None)
    hint = workcopy.lab_hint(copy, tmp_path / "reports")
    assert "make lab" not in hint
    assert f"--ServerApp.root_dir={tmp_path / 'reports'} {' '.join(workcopy.LAB_OPTIONS)}`" in hint
    assert hint.endswith(" open gdpr_request/20261207T190106Z-interactive/g.ipynb")
    monkeypatch.undo()
    # a checkout whose configuration keeps the archive outside it: `make lab`, rooted at the
    # checkout, could not open the copy; JupyterLab on the archive can
    assert workcopy.lab_hint(copy, tmp_path / "reports") == hint
    inside = REPO / "reports" / "gdpr_request" / "20261207T190106Z-interactive" / "g.ipynb"
    assert "`make lab`, then open reports/gdpr_request/" in workcopy.lab_hint(
        inside, REPO / "reports"
    )


def _cells_notebook(path: Path, *sources: str) -> Path:
    """A notebook of code cells on powrops' kernel, its first showing powrops' errors."""
    from powrops.reports.kernel import ensure_kernel

    nb = nbformat.v4.new_notebook()  # type: ignore[no-untyped-call]
    first = "from powrops.errors import show_in_notebooks\nshow_in_notebooks()"
    nb.cells = [nbformat.v4.new_code_cell(s) for s in (first, *sources)]  # type: ignore[no-untyped-call]
    nb.metadata["kernelspec"] = {"name": ensure_kernel(), "display_name": "powrops"}
    nbformat.write(nb, path)  # type: ignore[no-untyped-call]
    return path


def test_a_cell_run_before_the_cell_that_sets_its_names_says_so_in_one_line(
    tmp_path: Path,
) -> None:
    """A DBA who runs the restore cell before the confirmation cell (or skips the parameters
    cell) meets one line naming what is not set and what to do, not a NameError traceback;
    a NameError inside a function (a defect) keeps its traceback."""
    copy = _cells_notebook(tmp_path / "a.ipynb", "destination = 1", "print(proceed)")
    *_, stopped = run_by_hand(copy, [])
    assert stopped["status"] == "error" and stopped["ename"] == "NameError"
    [line] = stopped["traceback"]
    assert line.startswith("Stopped: proceed is not set yet: a cell above this one sets it")
    assert "Run All Above Selected Cell" in line
    defect = _cells_notebook(tmp_path / "b.ipynb", "def f():\n    return nowhere\n\nf()")
    *_, crashed = run_by_hand(defect, [])
    assert crashed["ename"] == "NameError" and len(crashed["traceback"]) > 1
    assert not any("Stopped:" in frame for frame in crashed["traceback"])


def test_the_stop_button_mid_cell_says_so_in_one_line(tmp_path: Path) -> None:
    """Kernel > Interrupt (JupyterLab's Stop button, SIGINT to the kernel) during a cell, as
    at a confirmation prompt or a long step: one line saying it was interrupted and that the
    cell did not finish, not a KeyboardInterrupt traceback through the library."""
    from jupyter_client.manager import KernelManager

    copy = _cells_notebook(tmp_path / "a.ipynb")
    nb = nbformat.read(copy, as_version=4)
    manager = KernelManager(kernel_name=nb.metadata.kernelspec.name)
    manager.start_kernel(cwd=str(tmp_path))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        client.execute_interactive(nb.cells[0].source, timeout=60)
        ident = client.execute("import time\ntime.sleep(60)")
        time.sleep(1)
        manager.interrupt_kernel()
        reply = client.get_shell_msg(timeout=30)["content"]
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    assert reply["status"] == "error" and ident
    [line] = reply["traceback"]
    assert line == "Stopped: interrupted by SIGINT; this cell did not finish: run it again to do it"


@pytest.mark.pg
def test_a_second_open_names_the_earlier_copies_not_finished(
    migrated_db: str, tmp_path: Path
) -> None:
    """``powrops runbook NAME`` again (the tab closed, the command run twice) writes a new copy
    and names the earlier ones whose run did not reach its record, so that one incident's
    evidence is not split between copies unseen; a copy run to its end is not named."""
    from test_archival import seed

    seed(migrated_db, users=2, weeks=1)
    config = tmp_path / "powrops.toml"
    config.write_text(
        f'[database]\nurl = "{libpq(migrated_db)}"\n[state]\ndir = "{tmp_path / "state"}"\n'
        f'[reports]\ndir = "{tmp_path / "reports"}"\n'
    )
    args = ("--config", str(config), "runbook", "gdpr_request", "-p", "user_id", "1")
    first = open_runbook("gdpr_request", config, "-p", "user_id", "1")
    again = run_cli(*args)
    assert again.returncode == 0, again.stderr
    assert "earlier copies of gdpr_request not finished" in again.stdout
    [named] = [line for line in again.stdout.splitlines() if str(first) in line]
    assert named.endswith(", no cell run)")
    second = Path(next(x for x in again.stdout.splitlines() if x.startswith("working copy: "))
                  .removeprefix("working copy: "))  # fmt: skip
    _, error = execute(first)
    assert error is None
    third = run_cli(*args).stdout
    assert str(first) not in third and f"  {second} (opened " in third


@pytest.mark.pg
def test_a_copy_run_out_of_order_archives_the_line_the_page_showed(
    migrated_db: str, tmp_path: Path
) -> None:
    """The working copy's cell that carries out the request run straight after the recorder's
    (the cells above skipped): result.json, and so the page's header and the index, keep the
    one line the cell showed, not Python's bare "name ... is not defined"."""
    config = tmp_path / "powrops.toml"
    config.write_text(
        f'[database]\nurl = "{libpq(migrated_db)}"\n[state]\ndir = "{tmp_path / "state"}"\n'
        f'[reports]\ndir = "{tmp_path / "reports"}"\n'
    )
    copy = open_runbook("gdpr_request", config, "-p", "user_id", "1")
    nb = nbformat.read(copy, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    nb.cells = [code[0], next(c for c in code if "carry_out_request(" in c.source)]
    nbformat.write(nb, copy)  # type: ignore[no-untyped-call]
    *_, stopped = run_by_hand(copy, [])
    assert stopped["ename"] == "NameError"
    error = json.loads((copy.parent / "result.json").read_text())["error"]
    assert error["evalue"].startswith("requests is not set yet: a cell above this one sets it")


def test_the_stop_button_while_a_finished_cell_is_archived_keeps_the_evidence_whole(
    tmp_path: Path,
) -> None:
    """Kernel > Interrupt pressed just as a cell ends, while the recorder writes that cell's
    evidence (as happens during Run All, each cell's archive taking a moment): the archive is
    written whole (the cell counted, no traceback through the recorder on the page), the page
    says the interrupt came after the cell had finished, and the cells queued after it are not
    run, as for an interrupt inside a cell."""
    from jupyter_client.manager import KernelManager

    config = tiny_project(tmp_path)
    nb = nbformat.read(tmp_path / "runbooks" / "tiny.ipynb", as_version=4)
    nb.cells[3:] = [
        nbformat.v4.new_code_cell(  # the Stop button pressed during the next archive write
            "import os, signal\nfrom powrops.reports import evidence\n"
            "real, armed = evidence.write_archive, []\n"
            "def interrupted_while_writing(*args, **kwargs):\n"
            "    if armed:\n        armed.clear()\n        os.kill(os.getpid(), signal.SIGINT)\n"
            "    return real(*args, **kwargs)\n"
            "evidence.write_archive = interrupted_while_writing"
        ),
        nbformat.v4.new_code_cell('armed.append(1)\nprint("step done")'),
        nbformat.v4.new_code_cell('print("the next step")'),
    ]
    nbformat.write(nb, tmp_path / "runbooks" / "tiny.ipynb")
    copy = open_runbook("tiny", config, root=tmp_path)
    code = [c.source for c in nbformat.read(copy, as_version=4).cells if c.cell_type == "code"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("POWROPS")}
    manager = KernelManager(kernel_name=nbformat.read(copy, as_version=4).metadata.kernelspec.name)
    manager.start_kernel(cwd=str(copy.parent), env={**env, "POWROPS_PROJECT_ROOT": str(tmp_path)})
    client = manager.client()
    client.start_channels()
    printed: list[str] = []
    try:
        client.wait_for_ready(timeout=60)
        for source in code[:-2]:
            assert client.execute_interactive(source, timeout=60)["content"]["status"] == "ok"
        sent = [client.execute(source) for source in code[-2:]]  # queued, as Run All does
        replies = {}
        while len(replies) < 2:
            reply = client.get_shell_msg(timeout=60)
            replies[reply["parent_header"]["msg_id"]] = reply["content"]
        while True:
            msg = client.get_iopub_msg(timeout=10)
            if msg["msg_type"] == "stream":
                printed.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                printed.extend(msg["content"]["traceback"])
            if (
                msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle"
                and (msg["parent_header"].get("msg_id") == sent[-1])
            ):
                break
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    step, following = (replies[m] for m in sent)
    shown = "".join(printed)
    assert "step done" in shown and "the next step" not in shown
    assert "Error in callback" not in shown and "KeyboardInterrupt" not in shown
    assert "Interrupted after this cell had finished" in shown
    assert step["status"] == "error" and following["status"] == "aborted"
    result = json.loads((copy.parent / "result.json").read_text())
    assert result["cells_run"] == len(code) - 1
    archived = nbformat.read(copy.parent / "notebook.ipynb", as_version=4)
    last = [c for c in archived.cells if c.cell_type == "code"][-1]
    assert "step done" in _text(last.outputs[0])
    assert "Interrupted after this cell had finished" in "".join(map(_text, last.outputs))
    assert "step done" in (copy.parent / "report.html").read_text()
