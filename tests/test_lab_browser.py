"""A DBA's run in real JupyterLab: Debian's chromium (headless, driven by Playwright through
``executable_path``: no browser download) opens a runbook's working copy made by ``powrops
runbook``, runs all cells, answers the confirmation prompt wrongly, then runs it again and
answers rightly. The archive holds what the page showed (every line of its printed output),
both answers, and the checkout is unchanged. The notebook is never saved by the test.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import nbformat
import pytest

from cli_helpers import libpq
from powrops.reports.workcopy import LAB_OPTIONS
from test_archival import seed
from test_interactive import _git_status, open_runbook

pytestmark = [pytest.mark.pg, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
JUPYTER_LAB = Path(sys.executable).with_name("jupyter-lab")

if CHROMIUM is None and not os.environ.get("CI"):
    pytest.skip(
        "Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """JupyterLab on a free port of 127.0.0.1 with a token, its root the test's project."""
    with _lab(tmp_path) as started:
        yield started


@contextmanager
def _lab(root: Path, *options: str) -> Iterator[tuple[str, str]]:
    """JupyterLab with the options `make lab` gives it (``LAB_OPTIONS``), ``options`` in
    place of those of the same name."""
    names = {option.split("=", 1)[0] for option in options}
    kept = [option for option in LAB_OPTIONS if option.split("=", 1)[0] not in names]
    port, token = _free_port(), secrets.token_hex(16)
    log = (root / "lab.log").open("w")
    proc = subprocess.Popen(
        [str(JUPYTER_LAB), "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
         "--allow-root", "--LabApp.news_url=", "--LabApp.check_for_updates_class="
         "jupyterlab.NeverCheckForUpdate", *kept, *options],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "JUPYTER_RUNTIME_DIR":
        str(root / "runtime")},
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _answers(f"{base}/api/status?token={token}"), 60, "JupyterLab to start")
        yield base, token
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _wait(done: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = done()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def _result(run: Path) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((run / "result.json").read_text())
    except (OSError, ValueError):
        return {}
    return data


def test_a_runbook_run_in_jupyterlab_is_archived_as_the_page_showed_it(
    migrated_db: str, tmp_path: Path, lab: tuple[str, str]
) -> None:
    from playwright.sync_api import sync_playwright

    seed(migrated_db, users=2, weeks=1)
    before = _git_status()
    database = libpq(migrated_db).rsplit("/", 1)[1]
    config = tmp_path / "powrops.toml"
    config.write_text(
        f'[database]\nurl = "{libpq(migrated_db)}"\n[state]\ndir = "{tmp_path / "state"}"\n'
        f'[reports]\ndir = "{tmp_path / "reports"}"\n'
    )
    export = tmp_path / "export"
    copy = open_runbook(
        "gdpr_request", config, "-p", "user_id", "1", "-p", "export_path", str(export)
    )
    run = copy.parent
    base, token = lab
    url = f"{base}/lab/tree/{copy.relative_to(tmp_path).as_posix()}?token={token}"
    with sync_playwright() as play:
        browser = play.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        try:
            page.goto(url)
            page.locator(".jp-Notebook .jp-Cell").first.wait_for()
            _wait(lambda: _kernels_idle(base, token), 60, "the kernel to start")
            _menu(page, "Run", "Run All Cells")
            _answer(page, "staging")  # the wrong name: nothing is done
            _wait(lambda: _result(run).get("recorded"), 60, "the first run to record")
            page.locator(".jp-CodeCell", has_text="gate.confirm(").locator(".cm-content").click()
            _menu(page, "Run", "Run Selected Cell and All Below")
            _answer(page, database)
            _wait(lambda: len(_result(run).get("answers", [])) == 2 and export.exists(), 60,
                  "the confirmed export")  # fmt: skip
            _wait(lambda: _result(run).get("cells_run", 0) >= 10, 60, "the rerun to finish")
            shown = page.locator(
                ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stdout']"
            ).all_inner_texts()
        finally:
            browser.close()

    result = _result(run)
    assert [a["answer"] for a in result["answers"]] == ["staging", database]
    assert result["failed"] is False and result["recorded"] is True
    assert result["parameters"]["export_path"] == str(export)
    archived = nbformat.read(run / "notebook.ipynb", as_version=4)
    printed = "".join(
        o.get("text", "")
        for c in archived.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "stream"
    )
    assert "Not confirmed" in printed and "Confirmed" in printed
    assert "staging\n" in printed and f"{database}\n" in printed
    lines = [" ".join(line.split()) for text in shown for line in text.splitlines()]
    assert any("Confirmed" in line for line in lines)
    kept = {" ".join(line.split()) for line in printed.splitlines()}
    assert [line for line in lines if line and line not in kept] == []
    assert "Confirmed" in (run / "report.html").read_text()
    # both answers name the cell that asked by its place in the copy (JupyterLab's cell id)
    cells = nbformat.read(copy, as_version=4).cells
    asking = next(i for i, c in enumerate(cells) if "gate.confirm(" in c.source)
    assert [a["cell"] for a in result["answers"]] == [asking, asking]
    first, second = (a["archived_cell"] for a in result["answers"])
    assert first < second and "gate.confirm(" in archived.cells[second].source
    # the rerun confirmed by the typed name: the refusal before it no longer stands
    [decided] = result["confirmations"]
    assert decided["how"] == "typed" and result["status"] == "OK"
    assert _git_status() == before


def _kernels_idle(base: str, token: str) -> bool:
    """Whether JupyterLab's kernel has started and waits (Jupyter Server's REST API)."""
    try:
        with urllib.request.urlopen(f"{base}/api/kernels?token={token}", timeout=5) as resp:
            kernels = json.load(resp)
    except OSError:  # Jupyter Server answers 500 while a kernel is half started
        return False
    return bool(kernels) and all(k["execution_state"] == "idle" for k in kernels)


def _menu(page: Any, menu: str, item: str) -> None:
    page.locator(".lm-MenuBar-itemLabel", has_text=menu).first.click()
    page.locator(".lm-Menu-itemLabel", has_text=item).first.click()


def _answer(page: Any, text: str) -> None:
    box = page.locator(".jp-Stdin-input")
    box.wait_for()
    box.fill(text)
    box.press("Enter")
    box.wait_for(state="detached")


def test_a_kernel_whose_page_was_closed_is_shut_down_once_idle(tmp_path: Path) -> None:
    """The DBA closes the working copy's tab (or the archive step ends the run): its kernel,
    which JupyterLab leaves running, is shut down once idle with no page connected, under
    `make lab`'s options (the idle time shortened here); the Makefile gives JupyterLab the
    same options as the command installed from the wheel names."""
    repo = Path(__file__).resolve().parents[1]
    planned = subprocess.run(["make", "-n", "-C", str(repo), "lab"], capture_output=True,
                             text=True, check=True).stdout  # fmt: skip
    [command] = [line.split() for line in planned.splitlines() if " lab " in line]
    assert set(LAB_OPTIONS) <= set(command)
    timeout = "--MappingKernelManager.cull_idle_timeout"
    assert any(option.startswith(f"{timeout}=") for option in LAB_OPTIONS)
    with _lab(tmp_path, f"{timeout}=2", "--MappingKernelManager.cull_interval=1") as (base, token):
        json_body = {"Content-Type": "application/json"}
        request = urllib.request.Request(
            f"{base}/api/kernels?token={token}", method="POST", data=b"{}", headers=json_body
        )
        with urllib.request.urlopen(request, timeout=30) as resp:
            started = json.load(resp)["id"]
        assert started in _kernel_ids(base, token)
        _wait(lambda: started not in _kernel_ids(base, token), 60, "the idle kernel to be culled")


def _kernel_ids(base: str, token: str) -> set[str]:
    with urllib.request.urlopen(f"{base}/api/kernels?token={token}", timeout=5) as resp:
        return {k["id"] for k in json.load(resp)}


def test_jupyterlab_refuses_to_save_into_the_templates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under `make lab`'s options, a template opened from runbooks/ or notebooks/ and saved
    (Ctrl+S, or JupyterLab's autosave of the outputs of cells run in it) is refused with a
    message naming `powrops runbook`, and the checkout stays as it was; a working copy in
    reports/ saves as before."""
    import urllib.error

    for name in ("runbooks", "notebooks", "migrations", "reports"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("POWROPS_PROJECT_ROOT", str(tmp_path))  # the checkout Lab serves
    template = tmp_path / "runbooks" / "tiny.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), template)
    before = template.read_bytes()
    ran = nbformat.v4.new_notebook()
    ran.cells = [nbformat.v4.new_code_cell("print(1)")]
    body = json.dumps({"type": "notebook", "format": "json", "content": ran}).encode()

    def save(base: str, token: str, path: str) -> tuple[int, str]:
        request = urllib.request.Request(f"{base}/api/contents/{path}?token={token}",
                                         data=body, method="PUT")  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                return int(resp.status), ""
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read()).get("message", "")

    with _lab(tmp_path) as (base, token):
        refused = save(base, token, "runbooks/tiny.ipynb")
        refused_new = save(base, token, "notebooks/new.ipynb")
        saved = save(base, token, "reports/tiny.ipynb")
    assert refused[0] == 403 and "powrops runbook tiny" in refused[1]
    assert refused_new[0] == 403 and not (tmp_path / "notebooks" / "new.ipynb").exists()
    assert template.read_bytes() == before
    assert saved[0] in (200, 201) and (tmp_path / "reports" / "tiny.ipynb").exists()
