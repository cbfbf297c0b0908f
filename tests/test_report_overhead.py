"""What keeps a report's own cost small stays true, and takes nothing away from the report.

Each shortcut of the runner has a test that fails when it is undone (the start-up cost comes
back) and one that fails when it changed what a report is (a check answers differently, a
page loses its plots or tables).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_core.utils import run_sync

from powrops.errors import Interrupted, ReportError
from powrops.findings import Severity
from powrops.reports import external_resources, html, kernel, preload, render_html
from powrops.reports.html import ReportHeader
from powrops.reports.kernel import KERNEL_OPTIONS, ensure_kernel, preload_options
from powrops.reports.runner import run_report
from powrops.reports.spec import discover, find

GRAMMAR = "rfc3987_syntax.syntax_helpers"
IRI_CHECKS = (
    "import jsonschema\n"
    "check = jsonschema.Draft7Validator.FORMAT_CHECKER\n"
    "values = ['http://example.com/a', 'http://example.com/\\u00e4', 'http://x/a b', 'x', '']\n"
    "print([check.conforms(v, f) for v in values for f in ('iri', 'iri-reference')])\n"
)

needs_grammar = pytest.mark.skipif(
    importlib.util.find_spec("rfc3987_syntax") is None, reason="rfc3987-syntax is not installed"
)


def fresh(code: str) -> str:
    """What ``code`` prints in a new interpreter."""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return run.stdout.strip()


@needs_grammar
def test_reading_a_notebook_does_not_compile_the_iri_grammar() -> None:
    loaded = f"import sys; print({GRAMMAR!r} in sys.modules)"
    assert fresh(f"import nbformat; {loaded}") == "True"  # what it costs without powrops
    assert fresh(f"import powrops.reports, nbformat, papermill, nbconvert; {loaded}") == "False"


@needs_grammar
def test_iri_formats_are_checked_as_without_the_stand_in() -> None:
    plain = fresh(IRI_CHECKS)
    assert "True" in plain and "False" in plain  # the grammar really decides
    assert fresh("import powrops.reports\n" + IRI_CHECKS) == plain
    loaded = f"import sys; print({GRAMMAR!r} in sys.modules)"
    after = fresh(f"import powrops.reports\n{IRI_CHECKS}{loaded}")
    assert after.splitlines() == [plain, "True"]  # built on the first check, in its place
    found = "import importlib.util; print(importlib.util.find_spec('rfc3987_syntax').origin)"
    assert fresh(f"import powrops.reports; {found}") == fresh(found)
    helpers = "import rfc3987_syntax.syntax_helpers as h; print(h.is_valid_syntax('iri', 'x:y'))"
    assert fresh(f"import powrops.reports; {helpers}") == "True"


# --- the runner -------------------------------------------------------------------------


def _notebook(path: Path, *sources: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}")]
    nb.cells += [nbformat.v4.new_code_cell(source) for source in sources]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


KERNEL_PROBE = (
    "import atexit, os, pathlib\n"
    "from powrops.reports import record\n"
    "stopped = pathlib.Path(os.environ['POWROPS_RUN_DIR']).parent / 'kernel-stopped-gracefully'\n"
    "atexit.register(stopped.touch)\n"
    "record(figures={'history': get_ipython().history_manager.enabled})"
)


def test_a_report_kernel_starts_without_history_and_is_stopped_at_once(tmp_path: Path) -> None:
    _notebook(tmp_path / "project" / "notebooks" / "probe.ipynb", KERNEL_PROBE)
    run = run_report("probe", {}, reports_dir=tmp_path / "archive", root=tmp_path / "project")
    assert run.result["failed"] is False, run.result["error"]
    assert run.result["figures"] == {"history": False}  # KERNEL_OPTIONS reached the kernel
    assert not (run.path.parent / "kernel-stopped-gracefully").exists()  # no atexit: killed


def test_a_report_is_found_by_reading_its_own_notebook_only(tmp_path: Path) -> None:
    project = tmp_path / "project"
    _notebook(project / "notebooks" / "wanted.ipynb", "x = 1")
    (project / "notebooks" / "broken.ipynb").write_text("{ not a notebook")
    (project / "runbooks").mkdir()
    assert find("wanted", project).path == (project / "notebooks" / "wanted.ipynb").resolve()
    with pytest.raises(ReportError, match=r"cannot read notebook .*broken"):
        discover(project)  # what reading every notebook would have met
    with pytest.raises(
        ReportError, match="unknown report 'nope'; available reports: broken, wanted"
    ):
        find("nope", project)
    _notebook(project / "runbooks" / "wanted.ipynb", "x = 2")
    with pytest.raises(ReportError, match="report name 'wanted' is used twice"):
        find("wanted", project)


def _executed_notebook() -> nbformat.NotebookNode:
    """A notebook as papermill leaves it: markdown, a table, a plot, printed text."""
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 32).decode()
    nb = nbformat.v4.new_notebook()
    table = "<table><tr><th>table</th><th>rows</th></tr><tr><td>t_a</td><td>42</td></tr></table>"
    cells = [
        nbformat.v4.new_markdown_cell("# Title\n\nSome *narrative*."),
        nbformat.v4.new_code_cell("show_table(rows)", outputs=[
            nbformat.v4.new_output("display_data", data={"text/html": table}),
        ]),
        nbformat.v4.new_code_cell("show(fig)", outputs=[
            nbformat.v4.new_output("display_data", data={"image/png": png}),
        ]),
        nbformat.v4.new_code_cell("print('done')", outputs=[
            nbformat.v4.new_output("stream", name="stdout", text="done_marker_5\n"),
        ]),
    ]  # fmt: skip
    nb.cells = cells
    return nb


TEMPLATES_COMPILED = (
    "import jinja2\n"
    "compiled = []\n"
    "compile = jinja2.Environment.compile\n"
    "def counted(self, *args, **kwargs):\n"
    "    compiled.append(args[1] if len(args) > 1 else None)\n"
    "    return compile(self, *args, **kwargs)\n"
    "jinja2.Environment.compile = counted\n"
    "from powrops.reports import html\n"
    "html.prepare(True)\n"
    "print(len(compiled))\n"
)


def test_a_process_loads_the_report_template_compiled_by_an_earlier_one(tmp_path: Path) -> None:
    def compiled() -> int:
        env = {**os.environ, "TMPDIR": str(tmp_path)}  # Jinja's cache folder is in there
        run = subprocess.run([sys.executable, "-c", TEMPLATES_COMPILED], env=env,
                             capture_output=True, text=True, check=True)  # fmt: skip
        return int(run.stdout)

    assert compiled() > 3  # the page template and the templates it extends
    assert compiled() == 0
    assert list(tmp_path.glob("_jinja2-cache-*/__jinja2_*"))


def test_the_page_is_the_same_from_a_prepared_and_reused_exporter() -> None:
    nb = _executed_notebook()
    header = ReportHeader(title="t", status=Severity.OK)
    html._exporter.cache_clear()
    fresh = {kind: render_html(nb, hide_code=kind, header=header) for kind in (True, False)}
    html._exporter.cache_clear()
    for kind in (True, False):
        html.prepare(kind)
    for _ in range(2):
        again = {kind: render_html(nb, hide_code=kind, header=header) for kind in (True, False)}
        assert again == fresh
    for kind, page in fresh.items():
        assert external_resources(page) == []
        assert "data:image/png;base64," in page and "<td>t_a</td>" in page
        assert "done_marker_5" in page and "<em>narrative</em>" in page
        assert ("show_table" in page) is not kind  # code hidden on scheduled pages


def test_the_growth_reports_kernel_does_not_load_sqlalchemy() -> None:
    imports = (
        "from powrops import config, db\n"
        "from powrops.growth import gather, view\n"
        "from powrops.reports import record, show_table\n"
        "from powrops.reports.plotting import show\n"
        "import sys; print('sqlalchemy' in sys.modules)"
    )
    assert fresh(imports) == "False"
    assert fresh("import powrops.schema, sys; print('sqlalchemy' in sys.modules)") == "True"


@pytest.mark.skipif(importlib.util.find_spec("boto3") is None, reason="boto3 is not installed")
def test_papermill_loads_boto3_only_when_an_s3_notebook_is_used() -> None:
    loaded = "import sys; print('boto3' in sys.modules)"
    assert fresh(f"import papermill; {loaded}") == "True"  # what it costs without powrops
    assert fresh(f"import powrops.reports.runner, papermill; {loaded}") == "False"
    used = "import powrops.reports.runner, papermill.iorw, sys\nprint(type(papermill.iorw.S3()))"
    assert fresh(used) == "<class 'papermill.s3.S3'>"  # the real handler, on first use
    other = "import powrops.reports.runner, papermill.s3\nprint(papermill.s3.Bucket)"
    assert fresh(other) == "<class 'papermill.s3.Bucket'>"  # any other name: the real one


def test_a_report_run_finds_its_kernel_without_importing_ipython(tmp_path: Path) -> None:
    project = tmp_path / "project"
    _notebook(project / "notebooks" / "probe.ipynb", "from powrops.reports import record\nrecord()")
    run = (
        "import sys\n"
        "from pathlib import Path\n"
        "from powrops.reports.runner import run_report\n"
        f"run = run_report('probe', reports_dir=Path({str(tmp_path / 'archive')!r}), "
        f"root=Path({str(project)!r}))\n"
        "print(run.result['failed'], 'IPython' in sys.modules)"
    )
    assert fresh(run) == "False False"
    found = (
        "import sys, jupyter_client\n"
        "from powrops.reports.kernel import ensure_kernel\n"
        "km = jupyter_client.KernelManager(kernel_name=ensure_kernel())\n"
        "print(km.kernel_spec.argv[0] == sys.executable, 'IPython' in sys.modules)"
    )
    assert fresh(found) == "True True"  # what finding it costs jupyter_client's own way


CHILDREN = (
    "def children():\n"
    "    found = []\n"
    "    for pid in filter(str.isdigit, os.listdir('/proc')):\n"
    "        try:\n"
    "            stat = Path(f'/proc/{pid}/stat').read_text()\n"
    "        except OSError:\n"
    "            continue\n"
    "        if int(stat.rsplit(')', 1)[1].split()[1]) == os.getpid():\n"
    "            found.append(pid)\n"
    "    return found\n"
)

KERNEL_STARTS = (
    "import os, sys\n"
    "from pathlib import Path\n"
    "started = []\n"
    "def hook(event, args):\n"
    "    if event == 'subprocess.Popen' and any('ipykernel' in str(a) for a in args[1]):\n"
    "        started.append('papermill' in sys.modules or 'nbformat' in sys.modules)\n"
    "sys.addaudithook(hook)\n"
    "from powrops.errors import ParameterError\n"
    "from powrops.reports.runner import run_report\n"
)


def _probe_project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    source = "# Parameters\nlimit = 3\n"
    _notebook(
        project / "notebooks" / "probe.ipynb",
        source,
        "from powrops.reports import record\nrecord()",
    )
    nb = nbformat.read(project / "notebooks" / "probe.ipynb", as_version=4)
    nb.cells[1].metadata["tags"] = ["parameters"]
    nbformat.write(nb, str(project / "notebooks" / "probe.ipynb"))
    return project


def test_a_report_kernel_starts_before_papermill_is_loaded(tmp_path: Path) -> None:
    project = _probe_project(tmp_path)
    run = (
        f"{KERNEL_STARTS}"
        f"run = run_report('probe', {{'limit': '4'}}, reports_dir=Path({str(tmp_path / 'a')!r}), "
        f"root=Path({str(project)!r}))\n"
        "print(run.result['failed'], run.result['parameters'], started)"
    )
    assert fresh(run) == "False {'limit': 4} [False]"  # one kernel, papermill, nbformat not yet


def test_a_refused_run_stops_its_kernel_and_leaves_no_folder(tmp_path: Path) -> None:
    project = _probe_project(tmp_path)
    archive = tmp_path / "archive"
    refused = (
        f"{KERNEL_STARTS}{CHILDREN}"
        "try:\n"
        f"    run_report('probe', {{'limit': 'x'}}, reports_dir=Path({str(archive)!r}), "
        f"root=Path({str(project)!r}))\n"
        "except ParameterError as exc:\n"
        "    print(type(exc).__name__, len(started), children())\n"
    )
    assert fresh(refused) == "ParameterError 1 []"  # its kernel had started, and was stopped
    assert not archive.exists()


PRELOAD_PROBE = (
    "import sys, threading\n"
    "for thread in threading.enumerate():\n"
    "    if thread.name == 'powrops-preload':\n"
    "        thread.join()\n"
    "from powrops.reports import record\n"
    "names = sorted(k for k in globals() if not k.startswith('_'))\n"
    "loaded = {m: m in sys.modules for m in ('matplotlib.pyplot', 'powrops.growth.forecast')}\n"
    "record(figures={**loaded, 'names': names})"
)


def test_a_report_kernel_loads_what_its_notebook_imports_while_it_waits(tmp_path: Path) -> None:
    project = tmp_path / "project"
    path = project / "notebooks" / "probe.ipynb"
    drawn = "def show(figure):\n    print(figure)\n\nshow('a figure')"
    _notebook(path, PRELOAD_PROBE, "from powrops.growth import forecast", drawn)
    run = run_report("probe", {}, reports_dir=tmp_path / "archive", root=project)
    assert run.result["failed"] is False, run.result["error"]
    figures = run.result["figures"]
    assert figures["matplotlib.pyplot"] and figures["powrops.growth.forecast"]
    ipython = ["In", "Out", "exit", "get_ipython", "open", "quit"]
    assert figures["names"] == str(sorted([*ipython, "record", "sys", "thread", "threading"]))


def test_the_preload_loads_what_the_first_cell_imports_before_pyplot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loaded: list[str] = []
    monkeypatch.setattr(preload.importlib, "import_module", loaded.append)
    monkeypatch.setattr(preload.plotting, "pyplot", lambda: loaded.append("pyplot"))
    preload.load(("powrops.config", "powrops.growth.gather"), True)
    assert loaded == ["powrops.config", "powrops.growth.gather", "pyplot"]
    loaded.clear()
    preload.load(("powrops.config",), False)
    assert loaded == ["powrops.config"]


def test_the_preload_is_for_report_runs_and_loads_pyplot_only_for_figures(tmp_path: Path) -> None:
    path = tmp_path / "n.ipynb"
    _notebook(path, "from powrops.growth import view\nimport json", "if False:\n    show(1)")
    (option,) = preload_options(path)
    assert option.startswith("--IPKernelApp.exec_lines=")
    assert "('powrops.growth', 'powrops.growth.view', 'json'), False)" in option
    _notebook(path, "show(figure)")
    assert preload_options(path)[0].endswith("start((), True)")
    spec = Path(sys.prefix) / "share" / "jupyter" / "kernels" / ensure_kernel() / "kernel.json"
    assert "exec_lines" not in spec.read_text() and "exec_lines" not in str(KERNEL_OPTIONS)


def test_a_report_kernel_starts_without_the_debugger(tmp_path: Path) -> None:
    project = tmp_path / "project"
    probe = (
        "import sys\n"
        "from powrops.reports import record\n"
        "import ipykernel.debugger\n"
        "names = ('debugpy', 'pydevd', 'ipykernel.kernelapp')\n"
        "loaded = {m: sys.modules.get(m) is not None for m in names}\n"
        "record(figures={**loaded, 'available': ipykernel.debugger._is_debugpy_available})"
    )
    _notebook(project / "notebooks" / "probe.ipynb", probe)
    run = run_report("probe", {}, reports_dir=tmp_path / "archive", root=project)
    assert run.result["failed"] is False, run.result["error"]
    loaded = run.result["figures"]
    assert loaded == {
        "debugpy": False, "pydevd": False, "ipykernel.kernelapp": True, "available": False
    }  # fmt: skip
    spec = Path(sys.prefix) / "share" / "jupyter" / "kernels" / ensure_kernel() / "kernel.json"
    assert '"ipykernel_launcher"' in spec.read_text()  # JupyterLab's kernels keep theirs


def test_only_ipykernels_launcher_is_replaced_in_a_report_kernels_command() -> None:
    command = ["/venv/bin/python", "-m", "ipykernel_launcher", "-f", "c.json", "--x=1"]
    assert kernel.without_debugger(command) == [
        "/venv/bin/python", "-c", kernel.REPORT_LAUNCHER, "-f", "c.json", "--x=1"
    ]  # fmt: skip
    other = ["/opt/kernel", "-m", "other_launcher", "-f", "c.json"]
    assert kernel.without_debugger(other) == other
    launched = subprocess.run(
        [sys.executable, "-c", kernel.REPORT_LAUNCHER.replace("launch_new_instance()\n", "")
         + "import ipykernel.debugger; print(ipykernel.debugger._is_debugpy_available)"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert launched.stdout.strip() == "False"


def test_a_report_kernel_is_ready_without_waiting_for_iopub_to_be_quiet(tmp_path: Path) -> None:
    answered: list[float] = []

    async def ready(client: Any) -> float:
        handle = client._handle_kernel_info_reply

        def noted(msg: dict[str, Any]) -> None:  # the reply arrived and IOPub is connected
            answered.append(time.monotonic())
            handle(msg)

        client._handle_kernel_info_reply = noted
        await client.wait_for_ready(timeout=60)
        return time.monotonic()

    manager = kernel._start_kernel(tmp_path, {}, [])
    try:
        client = manager.client()
        client.start_channels()
        done = run_sync(ready)(client)
        client.stop_channels()
    finally:
        kernel.stop_kernel(manager)
    # jupyter_client's own wait then reads IOPub until it has been quiet for 0.2 s
    assert done - answered[-1] < kernel.IOPUB_QUIET_S / 2


def test_a_killed_report_kernel_is_waited_for_in_milliseconds(tmp_path: Path) -> None:
    manager = kernel._start_kernel(tmp_path, {}, [])
    try:
        client = manager.client()
        client.start_channels()
        run_sync(client.wait_for_ready)(timeout=60)
        client.stop_channels()
    finally:
        clock = time.monotonic()
        kernel.stop_kernel(manager)
        took = time.monotonic() - clock
    assert not manager.has_kernel
    assert took < 0.09  # jupyter_client's own poll sleeps 0.1 s after the kill


def _interrupted_probe(tmp_path: Path, *cells: str) -> tuple[int, int, str]:
    """A report of ``cells`` run by ``run_report`` in a child process, sent Ctrl-C once a
    cell wrote its kernel's pid to ``tmp_path / "kernel-pid"``: (the kernel's pid, the
    child's exit code, its stderr)."""
    project, marker = tmp_path / "project", tmp_path / "kernel-pid"
    _notebook(project / "notebooks" / "probe.ipynb", *cells)
    code = (
        "from pathlib import Path\n"
        "from powrops.reports.runner import run_report\n"
        f"run_report('probe', reports_dir=Path({str(tmp_path / 'a')!r}), "
        f"root=Path({str(project)!r}))"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() or not marker.read_text():
            assert time.monotonic() < deadline and child.poll() is None
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=30)
    finally:
        child.kill()
    return int(marker.read_text()), child.returncode, stderr


def test_ctrl_c_during_a_report_run_leaves_no_kernel_and_archives_what_ran(
    tmp_path: Path,
) -> None:
    """Ctrl-C in the middle of a run: the kernel is gone, and the run is archived as UNKNOWN,
    stopped by SIGINT in the cell that was running, with the cells before it and their output
    (not an empty folder read as "killed or still running")."""
    marker = tmp_path / "kernel-pid"
    cell = f"import os, time\nopen({str(marker)!r}, 'w').write(str(os.getpid()))\ntime.sleep(60)"
    kernel, code, stderr = _interrupted_probe(tmp_path, "print('the first cell ran')", cell)
    assert not Path(f"/proc/{kernel}").exists()
    assert code != 0 and "archived as UNKNOWN" in stderr, stderr
    (run_dir,) = (tmp_path / "a" / "probe").iterdir()
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "UNKNOWN" and result["error"]["cell_index"] == 2, result
    assert "interrupted by SIGINT" in result["error"]["evalue"], result
    assert "the first cell ran" in (run_dir / "notebook.ipynb").read_text()
    assert "interrupted by SIGINT" in (run_dir / "report.html").read_text()
    assert run_dir.name in (tmp_path / "a" / "index.html").read_text()


def test_ctrl_c_during_a_report_run_lets_the_running_cell_release_what_it_holds(
    tmp_path: Path,
) -> None:
    """Ctrl-C while a cell holds a resource (a test restore's scratch server, a directory it
    writes): the kernel is interrupted and its cell's ``finally`` runs to its end before the
    kernel is stopped, as in a command run without a notebook; nothing it held is left."""
    marker, released = tmp_path / "kernel-pid", tmp_path / "released"
    kernel, code, stderr = _interrupted_probe(tmp_path, (
        f"import os, time\ntry:\n    open({str(marker)!r}, 'w').write(str(os.getpid()))\n"
        f"    time.sleep(60)\nfinally:\n    time.sleep(1)\n    open({str(released)!r}, 'w')"
    ))  # fmt: skip
    assert released.exists(), stderr
    assert not Path(f"/proc/{kernel}").exists()
    assert code != 0 and "archived as UNKNOWN" in stderr, stderr


def test_ctrl_c_between_cells_lets_the_kernel_release_what_it_holds_across_them(
    tmp_path: Path,
) -> None:
    """What a kernel holds from one cell to the next (a drill's scratch cluster, registered
    with powrops.held) is released when the run is interrupted, before the kernel is
    stopped: killed, the kernel would run no exit handler, and the drill's server ran on."""
    marker, released = tmp_path / "kernel-pid", tmp_path / "released"
    kernel, code, stderr = _interrupted_probe(tmp_path, (
        f"import os, time, powrops.held\n"
        f"powrops.held.hold(lambda: open({str(released)!r}, 'w').write('released'))\n"
        f"open({str(marker)!r}, 'w').write(str(os.getpid()))\ntime.sleep(60)"
    ))  # fmt: skip
    assert released.exists() and released.read_text() == "released", stderr
    assert not Path(f"/proc/{kernel}").exists()
    assert code != 0 and "archived as UNKNOWN" in stderr, stderr


def test_ctrl_c_while_the_archive_is_written_leaves_it_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C once the cells ran, while the run's archive is written: the notebook, its page
    and its result are all written, and the index lists the run, before the interrupt ends
    the command, saying the run had finished (it left a notebook without its page, missing
    from the index)."""
    from powrops.reports import runner

    project = tmp_path / "project"
    _notebook(project / "notebooks" / "probe.ipynb", "print('ran')")
    writing = runner.write_archive

    def interrupted(*args: Any) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # handled at once, in this (the main) thread
        writing(*args)

    def command_handler(signum: int, frame: Any) -> None:  # as the command's own handler
        raise Interrupted("SIGINT")

    monkeypatch.setattr(runner, "write_archive", interrupted)
    previous = signal.signal(signal.SIGINT, command_handler)
    try:
        with pytest.raises(Interrupted) as raised:
            run_report("probe", reports_dir=tmp_path / "a", root=project)
    finally:
        signal.signal(signal.SIGINT, previous)
    (run_dir,) = (tmp_path / "a" / "probe").iterdir()
    status = json.loads((run_dir / "result.json").read_text())["status"]
    assert f"it had run, and is archived as {status} in {run_dir}" in str(raised.value)
    assert (run_dir / "report.html").is_file() and (run_dir / "notebook.ipynb").is_file()
    assert "ran" in (run_dir / "notebook.ipynb").read_text()
    assert run_dir.name in (tmp_path / "a" / "index.html").read_text()


def test_an_interrupt_while_the_kernel_starts_leaves_no_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before any cell ran there is nothing to archive: the run's folder, and the report's
    folder made for it, are removed again (no empty run read as "killed or still running")."""
    _notebook(tmp_path / "project" / "notebooks" / "probe.ipynb", "print(1)")

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(kernel, "_start_kernel", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_report("probe", {}, reports_dir=tmp_path / "archive", root=tmp_path / "project")
    assert not (tmp_path / "archive").exists()


#: What the runner's subclasses override or call of jupyter_client, papermill and nbclient
#: that is not their documented API: (class, member, the parameters it must take, or None for
#: a trait whose default the runner sets). An upgrade that renames or reshapes one fails here,
#: by name, instead of silently bringing a wait back or breaking report runs.
def _overridden() -> list[tuple[type, str, tuple[str, ...] | None]]:
    from jupyter_client.asynchronous.client import AsyncKernelClient
    from jupyter_client.manager import AsyncKernelManager
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine

    return [
        (AsyncKernelManager, "_async_wait", ("pollinterval",)),
        (AsyncKernelManager, "format_kernel_cmd", ("extra_arguments",)),
        (AsyncKernelManager, "shutdown_kernel", ("now", "restart")),
        (AsyncKernelManager, "kernel_spec_manager", None),
        (AsyncKernelManager, "client_factory", None),
        (AsyncKernelClient, "wait_for_ready", ("timeout",)),
        (AsyncKernelClient, "_handle_kernel_info_reply", ("msg",)),
        (AsyncKernelClient, "kernel_info", ()),
        (AsyncKernelClient, "is_alive", ()),
        (NBClientEngine, "execute_managed_notebook",
         ("nb_man", "kernel_name", "start_timeout", "execution_timeout")),
        (PapermillNotebookClient, "__init__", ("nb_man", "km")),
        (PapermillNotebookClient, "execute", ()),
    ]  # fmt: skip


def _name(value: object) -> str:
    return str(getattr(value, "__name__", value))


@pytest.mark.parametrize("owner, member, parameters", _overridden(), ids=_name)
def test_what_the_runner_overrides_upstream_is_still_there(
    owner: type, member: str, parameters: tuple[str, ...] | None
) -> None:
    import inspect

    if parameters is None:
        assert member in owner.class_trait_names(), f"{owner.__qualname__}.{member} is gone"  # type: ignore[attr-defined]
        return
    found = getattr(owner, member, None)
    assert callable(found), (
        f"{owner.__qualname__}.{member} is gone: see reports/kernel.py and reports/runner.py"
    )
    taken = inspect.signature(found).parameters
    missing = [name for name in parameters if name not in taken]
    assert not missing, f"{owner.__qualname__}.{member} no longer takes {missing}"


def test_the_overrides_are_what_the_runner_defines() -> None:
    """The list above follows the runner: each method its kernel classes define (a trait's
    default by its trait's name) is listed."""
    listed = {(owner, member) for owner, member, _ in _overridden()}
    for cls in (kernel._kernel_manager(), kernel._kernel_client()):
        base = cls.__mro__[1]
        for name in vars(cls):
            if name.startswith("__") or not callable(getattr(cls, name, None)):
                continue
            trait = name.removeprefix("_").removesuffix("_default")
            assert (base, name) in listed or (base, trait) in listed, (
                f"{cls.__name__}.{name} is not guarded above"
            )
