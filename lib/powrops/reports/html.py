"""Rendering executed notebooks to self-contained HTML, and checking that they are.

Reports are archived and read years later, often offline: a page must not load anything
from the network. nbconvert's JupyterLab template pulls require.js, MathJax and mermaid
from a CDN; the ``powrops`` template under ``templates/`` empties those blocks and adds a
status header bar and a footer. :func:`external_resources` lists everything a page would
load from elsewhere, so tests and the runner can prove a page is self-contained.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING, Any

from powrops import __version__
from powrops.findings import Severity
from powrops.format import human_seconds, human_value

if TYPE_CHECKING:
    import nbformat

TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
TEMPLATE_NAME = "powrops"
INJECTED_TAG = "injected-parameters"
REMOVE_CELL_TAGS = frozenset({"remove-cell", "remove_cell"})
REMOVE_INPUT_TAGS = frozenset({"remove-input", "remove_input", "hide-input", "hide_input"})

_RENDERING = threading.Lock()

_BAR_COLOURS = {
    Severity.OK: ("#1e7b34", "#ffffff"),
    Severity.WARNING: ("#f0a202", "#1a1a1a"),
    Severity.CRITICAL: ("#c0262d", "#ffffff"),
    Severity.UNKNOWN: ("#6c757d", "#ffffff"),
}


@dataclass(frozen=True)
class ReportHeader:
    """What the header bar of a rendered report shows."""

    title: str
    status: Severity = Severity.UNKNOWN
    kind: str = "scheduled"
    started_at: str | None = None
    duration_s: float | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    version: str | None = None
    target: str | None = None
    period: str | None = None
    #: The run's confirmations (:mod:`powrops.gate`, as recorded): a refused one is said.
    confirmations: Sequence[Mapping[str, Any]] = ()


def render_html(
    nb: nbformat.NotebookNode | Path | str,
    *,
    hide_code: bool,
    header: ReportHeader | None = None,
) -> str:
    """Render a notebook (node or path) to one self-contained HTML page.

    With ``hide_code`` (scheduled reports) code cells show their outputs only and the
    papermill ``injected-parameters`` cell loses its source; otherwise code is shown
    (runbooks, where the code is the evidence of what was done).
    """
    node = _load(nb)
    if hide_code:
        _strip_injected_source(node)
    exporter = _exporter(hide_code)
    title = header.title if header else str(node.metadata.get("title", "report"))
    resources: dict[str, Any] = {
        "metadata": {"name": title},
        "powrops": {
            "header": header_html(header) if header else "",
            "footer": footer_html(header.version if header else None),
        },
    }
    with _RENDERING:  # the exporter is shared (one per process): one page at a time
        body, _ = exporter.from_notebook_node(node, resources=resources)
    return str(body)


@functools.cache
def _exporter(hide_code: bool) -> Any:
    """nbconvert's HTML exporter on the ``powrops`` template, one per process and kind of
    page: its template is compiled once, on first use, or loaded compiled from Jinja's
    bytecode cache (Jinja's own folder for this OS user in the temporary directory; a
    template whose source changed is compiled again), half of what preparing it costs."""
    from jinja2 import FileSystemBytecodeCache
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    exporter = HTMLExporter(  # type: ignore[no-untyped-call]
        template_name=TEMPLATE_NAME,
        extra_template_basedirs=[str(TEMPLATE_DIR)],
    )
    exporter.exclude_input = hide_code
    exporter.exclude_input_prompt = hide_code
    exporter.exclude_output_prompt = hide_code
    exporter.embed_images = True
    exporter.register_preprocessor(  # type: ignore[no-untyped-call]
        TagRemovePreprocessor(  # type: ignore[no-untyped-call]
            remove_cell_tags=set(REMOVE_CELL_TAGS),
            remove_input_tags=set(REMOVE_INPUT_TAGS),
        ),
        enabled=True,
    )
    with contextlib.suppress(OSError, RuntimeError):  # no safe cache folder: compiled each time
        exporter.environment.bytecode_cache = FileSystemBytecodeCache()
    return exporter


def prepare(hide_code: bool) -> None:
    """What the first :func:`render_html` of a process pays before it renders anything
    (nbconvert imported, the template compiled), paid now: the runner calls it in a thread
    while the kernel starts and runs the cells. Whatever fails here fails again, and is
    reported, when the page is rendered."""
    import nbformat

    with contextlib.suppress(Exception):
        render_html(nbformat.v4.new_notebook(), hide_code=hide_code)  # type: ignore[no-untyped-call]


def header_html(header: ReportHeader) -> str:
    """The coloured bar at the top of a report: name, status, time, parameters, how each
    action was confirmed (in place of its parameter: by hand, a typed name decides), error."""
    bg, fg = _BAR_COLOURS[header.status]
    meta = [f"status <b>{escape(header.status.name)}</b>", escape(header.kind)]
    if header.target:
        meta.append(f"database {escape(header.target)}")
    if header.period:
        meta.append(f"covers {escape(header.period)}")
    if header.started_at:
        meta.append(f"started {escape(human_value('started_at', header.started_at))}")
    if header.duration_s is not None:
        meta.append(f"took {escape(human_seconds(header.duration_s))}")
    meta.extend(_parameters_and_decisions(header))
    error = f'<div class="powrops-error">{escape(header.error)}</div>' if header.error else ""
    error += "".join(
        f'<div class="powrops-error">{escape(str(d.get("described")))}</div>'
        for d in header.confirmations
        if d.get("refused")
    )
    return (
        f'<header class="powrops-bar" style="background:{bg};color:{fg}">'
        f"<h1>{escape(header.title)}</h1>"
        f'<div class="powrops-meta">{" · ".join(meta)}</div>{error}</header>'
    )


def _parameters_and_decisions(header: ReportHeader) -> list[str]:
    """The parameters, then how each action was decided; a confirmation's own parameter is
    left out (by hand, a typed name decides, not ``confirm``: its decision says how)."""
    decided = {str(d.get("parameter")) for d in header.confirmations}
    params = "; ".join(
        f"{escape(str(k))}: {escape(human_value(str(k), v) if v != '' else '(empty)')}"
        for k, v in header.parameters.items()
        if k not in decided
    )
    shown = [f"parameters: {params}"] if params else []
    return shown + [
        escape(str(d.get("described"))) for d in header.confirmations if not d.get("refused")
    ]


def footer_html(version: str | None) -> str:
    """The footer naming the powrops version that produced the page."""
    if version is None:
        version = __version__
    return f'<footer class="powrops-footer">Rendered by powrops {escape(version)}</footer>'


def read_notebook(path: Path | str) -> nbformat.NotebookNode:
    """Read a notebook file as nbformat version 4."""
    import nbformat

    node: nbformat.NotebookNode = nbformat.read(str(path), as_version=4)  # type: ignore[no-untyped-call]
    return node


def _load(nb: nbformat.NotebookNode | Path | str) -> nbformat.NotebookNode:
    """A private copy of the notebook, so rendering never changes the caller's node."""
    if isinstance(nb, Path | str):
        return read_notebook(nb)
    return copy.deepcopy(nb)


def _strip_injected_source(nb: nbformat.NotebookNode) -> None:
    for cell in nb.cells:
        if INJECTED_TAG in cell.get("metadata", {}).get("tags", []):
            cell.source = ""


# --- self-containment check -------------------------------------------------------------

_REMOTE = re.compile(r"^\s*(?:https?:)?//", re.IGNORECASE)
_CSS_URL = re.compile(r"""url\(\s*['"]?\s*((?:https?:)?//[^'")\s]+)""", re.IGNORECASE)
_CSS_IMPORT = re.compile(r"""@import\s+['"]\s*((?:https?:)?//[^'"]+)['"]""", re.IGNORECASE)
_LOADING_ATTRS = {"src", "data", "poster", "background", "srcset"}
_HREF_ATTRS = {"href", "xlink:href"}
_HREF_LOADS = {"link", "base", "image", "use", "feimage", "script"}


class _ResourceFinder(HTMLParser):
    """Collects URLs that a browser would fetch while loading the page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_style = tag == "style"
        for name, value in attrs:
            if value is None:
                continue
            if name in _LOADING_ATTRS or (name in _HREF_ATTRS and tag in _HREF_LOADS):
                self.found.extend(_remote_urls(value, srcset=name == "srcset"))
            elif name == "style":
                self.found.extend(css_resources(value))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        self._in_style = False

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.found.extend(css_resources(data))


def _remote_urls(value: str, *, srcset: bool) -> list[str]:
    candidates = [part.strip().split(" ")[0] for part in value.split(",")] if srcset else [value]
    return [c.strip() for c in candidates if _REMOTE.match(c)]


def css_resources(css: str) -> list[str]:
    """Remote URLs loaded by a piece of CSS through ``url(...)`` or ``@import``."""
    return _CSS_URL.findall(css) + _CSS_IMPORT.findall(css)


def external_resources(html: str) -> list[str]:
    """Every http(s) or protocol-relative URL the page would load when opened.

    Scripts, stylesheets, images, frames, media and CSS ``url()``/``@import`` count;
    ordinary ``<a href>`` links and ``xmlns`` declarations do not, as they load nothing.
    """
    finder = _ResourceFinder()
    finder.feed(html)
    finder.close()
    return finder.found
