"""Display helpers for report notebooks: banners and tables as self-contained HTML.

Notebooks stay free of presentation code: they call :func:`show_summary`,
:func:`show_findings` and :func:`show_table`, which build HTML with inline styles only (no
external stylesheet, font or script), escape every piece of text, and hand it to IPython.
The ``*_html`` functions return the markup for use outside a notebook.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from powrops.findings import Finding, Severity, counts, overall
from powrops.format import human_bool, human_finding_value, human_number, human_value

if TYPE_CHECKING:
    from powrops.db import Identity

COLOURS: dict[Severity, tuple[str, str]] = {
    # severity: (background, text)
    Severity.OK: ("#1e7b34", "#ffffff"),
    Severity.WARNING: ("#f0a202", "#1a1a1a"),
    Severity.CRITICAL: ("#c0262d", "#ffffff"),
    Severity.UNKNOWN: ("#6c757d", "#ffffff"),
}

# Cells wrap (long words too) so that a wide table fits the page instead of being cut off at
# the right; JupyterLab's own table rules (nowrap, fixed layout) are overridden inline.
_CELL = (
    "padding:4px 8px;border:1px solid #d0d0d0;text-align:left;vertical-align:top;"
    "white-space:normal;overflow-wrap:anywhere;max-width:40em"
)
_TABLE = (
    "border-collapse:collapse;font-family:sans-serif;font-size:13px;margin:6px 0;"
    "table-layout:auto;max-width:100%"
)
_CODE = "white-space:pre-wrap;overflow-wrap:anywhere;font-size:12px;margin:0"
#: Classes JupyterLab's and nbconvert's MathJax leave alone: ``$1 ... $2`` in a cell is text.
NO_MATH = "tex2jax_ignore mathjax_ignore"


def severity_badge(severity: Severity | str) -> str:
    """A small coloured label for one severity."""
    sev = Severity.parse(severity)
    bg, fg = COLOURS[sev]
    return (
        f'<span style="background:{bg};color:{fg};padding:1px 6px;border-radius:3px;'
        f'font-weight:bold;font-family:sans-serif">{sev.name}</span>'
    )


def summary_html(findings: Iterable[Finding], title: str, status: Severity | None = None) -> str:
    """A red/amber/green banner with the overall status and counts per severity."""
    found = list(findings)
    sev = overall(found) if status is None else status
    bg, fg = COLOURS[sev]
    tally = ", ".join(f"{n} {name}" for name, n in counts(found).items() if n)
    tally = tally or "no findings"
    return (
        f'<div style="background:{bg};color:{fg};padding:10px 14px;border-radius:4px;'
        f'font-family:sans-serif;margin:6px 0">'
        f'<div style="font-size:18px;font-weight:bold">{escape(sev.name)} — {escape(title)}</div>'
        f'<div style="font-size:13px">{escape(tally)}</div></div>'
    )


def findings_html(findings: Iterable[Finding]) -> str:
    """A table of findings, worst first, with the severity coloured."""
    found = sorted(findings, key=lambda f: -f.severity.rank)
    if not found:
        return '<p style="font-family:sans-serif">No findings.</p>'
    header = ("severity", "check", "object", "message", "value", "expected", "advice")
    rows = [
        [
            severity_badge(f.severity),
            cell_text(f.check),
            cell_text(f.object),
            inline_markup(f.message),
            escape(human_finding_value(f.check, f.value)),
            cell_text(f.expected),
            inline_markup(f.advice or ""),
        ]
        for f in found
    ]
    return markup_table(header, rows, caption=None)


def attention_html(findings: Iterable[Finding]) -> str:
    """What needs attention: the findings that are not OK, worst first, or one line saying
    that nothing does."""
    found = list(findings)
    problems = [f for f in found if f.severity is not Severity.OK]
    if problems:
        return findings_html(problems)
    checks = f"all {len(found)} checks are OK" if found else "there were no checks to judge"
    return f'<p style="font-family:sans-serif">Nothing needs attention: {checks}.</p>'


def steps_html(steps: Iterable[str]) -> str:
    """Advice as a list of formatted text: `code` in backticks becomes code, text wraps at
    words (never preformatted)."""
    items = "".join(f"<li>{inline_markup(step)}</li>" for step in steps)
    if not items:
        return '<p style="font-family:sans-serif">Nothing to do.</p>'
    return f'<ul style="font-family:sans-serif;font-size:14px;line-height:1.5">{items}</ul>'


def inline_markup(text: str) -> str:
    """Escaped text with `backticked` spans as <code>: how advice strings mark commands."""
    parts = str(text).split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: show the text as it is
        return escape(str(text))
    return "".join(
        f"<code>{escape(part)}</code>" if index % 2 else escape(part)
        for index, part in enumerate(parts)
    )


def table_html(
    data: Any, caption: str | None = None, max_rows: int = 200, code: Sequence[str] = ()
) -> str:
    """An HTML table from a pandas DataFrame, a list of mappings or a list of sequences; the
    columns named in ``code`` (SQL, commands) are shown as code, wrapped, never as text."""
    header, rows = _rows_of(data)
    shown = rows[:max_rows]
    as_code = [h in code for h in header]
    cells = [
        [code_text(v) if as_code[i] else cell_text(v) for i, v in enumerate(row)] for row in shown
    ]
    html = markup_table(header, cells, caption=caption)
    if len(rows) > max_rows:
        more = len(rows) - max_rows
        html += f'<p style="font-family:sans-serif;font-size:12px">{more} more rows not shown.</p>'
    return html


def target_html(target: Identity) -> str:
    """The banner naming the database a report or runbook acts on."""
    kind = "embedded cluster" if target.embedded else "configured server"
    return (
        '<div class="powrops-target" style="font-family:sans-serif;padding:6px 10px;'
        'border-left:4px solid #555;background:#f4f4f4;margin:4px 0">'
        f"Acting on <b>{escape(target.database)}</b> ({escape(kind)}): "
        f"{escape(target.describe())}</div>"
    )


def show_target(target: Identity) -> None:
    """Show which database this run acts on (every report and runbook opens with it)."""
    show_html(target_html(target))


def show_attention(findings: Iterable[Finding]) -> None:
    """Display what needs attention (only what is not OK, or "nothing")."""
    show_html(attention_html(findings))


def show_steps(steps: Iterable[str]) -> None:
    """Display advice as a formatted list."""
    show_html(steps_html(steps))


def show_summary(findings: Iterable[Finding], title: str, status: Severity | None = None) -> None:
    """Display the status banner in the notebook."""
    show_html(summary_html(findings, title, status))


def show_findings(findings: Iterable[Finding]) -> None:
    """Display the findings table in the notebook."""
    show_html(findings_html(findings))


def show_table(
    data: Any, caption: str | None = None, max_rows: int = 200, code: Sequence[str] = ()
) -> None:
    """Display a DataFrame or a list of rows as a table in the notebook (``code``: the
    columns shown as code, e.g. SQL)."""
    show_html(table_html(data, caption, max_rows, code))


def show_html(html: str) -> None:
    from IPython.display import HTML, display

    display(HTML(html))  # type: ignore[no-untyped-call]


def cell_text(value: Any) -> str:
    """Escaped text of one cell: None empty, booleans as words, floats without exponent, times
    (and ISO timestamp strings) in UTC to the second, lists joined (``powrops.format``); a
    whole number as it is, since a column of ids must not grow separators."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return human_bool(value)
    if isinstance(value, int):
        return escape(str(value))
    if isinstance(value, float):
        return escape(human_number(value))
    return escape(human_value("", value))


def code_text(value: Any) -> str:
    """One cell's text as code (SQL, a command): escaped, in ``<pre>``, wrapped; MathJax
    never reads ``$1`` in it as mathematics."""
    if value is None or value == "":
        return ""
    return f'<pre style="{_CODE}"><code>{escape(str(value))}</code></pre>'


def markup_table(header: Sequence[str], rows: Sequence[Sequence[str]], caption: str | None) -> str:
    """Markup of a table whose body cells are already escaped HTML."""
    cap = ""
    if caption:
        style = "text-align:left;font-weight:bold;padding:4px 0"
        cap = f'<caption style="{style}">{escape(caption)}</caption>'
    head = "".join(f'<th style="{_CELL};background:#f2f2f2">{escape(h)}</th>' for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td style="{_CELL}">{cell}</td>' for cell in row) + "</tr>"
        for row in rows
    )
    if not rows:  # an empty table says so instead of shrinking to its caption
        span = max(len(header), 1)
        body = f'<tr><td style="{_CELL};color:#555" colspan="{span}"><i>none</i></td></tr>'
    thead = f"<thead><tr>{head}</tr></thead>" if header else ""
    return f'<table class="{NO_MATH}" style="{_TABLE}">{cap}{thead}<tbody>{body}</tbody></table>'


def _rows_of(data: Any) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of a DataFrame-like object, list of mappings or list of sequences."""
    if hasattr(data, "columns") and hasattr(data, "itertuples"):
        header = [str(c) for c in data.columns]
        return header, [list(t) for t in data.itertuples(index=False, name=None)]
    items = list(data)
    if not items:
        return [], []
    if isinstance(items[0], Mapping):
        header = list(dict.fromkeys(str(k) for item in items for k in item))
        return header, [[item.get(h) for h in header] for item in items]
    width = max(len(item) for item in items)
    return [str(i) for i in range(width)], [list(item) for item in items]
