"""Plots for reports: matplotlib on the Agg backend, shown inline as PNG (no external files).

Every plot has a title and axis labels with units, so it reads on its own in a meeting, and
works at one point and at a thousand: time axes are fitted to the data with concise ticks (a
single moment gets a window around it and a note that a trend needs more runs), counts get
integer ticks, and a threshold far off the data's scale is named in a note instead of
stretching the axis. :func:`overstretched_axes` is the check the tests run on every view's
figure: no axis spans more than :data:`SPAN_FACTOR` times its data.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from powrops.format import human_number

#: An axis may span at most this many times the extent of the data it shows.
SPAN_FACTOR = 10.0

#: What a plot with one point says under its title.
ONE_POINT_NOTE = "one point so far: a trend needs more runs"

#: The resolution figures are laid out at and shown at (dots per inch): one, so that the text
#: measured by ``tight_layout`` is measured once and drawn as measured.
DPI = 110

#: matplotlib's settings for report figures: :data:`DPI`; glyphs drawn as the font draws
#: them, without FreeType's hinting (fitting each glyph to the pixel grid as it loads is about
#: a fifth of drawing a text-heavy figure; at 110 dpi the text reads the same); and titles at
#: the top of their axes, where matplotlib's automatic placement puts them when no tick label
#: is above the axes (none of the reports' figures has one), without it measuring every tick
#: label of the axes again each time the figure is laid out, measured or drawn (an eighth of
#: the work of a figure).
RC: dict[str, Any] = {"figure.dpi": DPI, "text.hinting": "no_hinting", "axes.titley": 1.0}

#: zlib's compression level of a figure's PNG: the fastest, 1, takes two thirds of the time
#: of Pillow's default 6 and makes these flat-coloured figures about as small (the same pixels).
PNG_COMPRESSION = 1


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend with :data:`RC`."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams.update(RC)  # type: ignore[arg-type]
    import matplotlib.pyplot as plt

    return plt


def barh(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str,
    xlabel: str,
    colours: Sequence[str] | None = None,
    limit: float | None = None,
    limit_label: str | None = None,
    integer: bool = False,
) -> Any:
    """A horizontal bar chart (one bar per label), optionally with a vertical limit line;
    ``integer`` for counts (whole-number ticks and labels)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.45 * max(len(labels), 2) + 1.2))
    ax.barh(list(labels), list(values), color=list(colours) if colours else "#3a6ea5")
    ax.invert_yaxis()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    if integer:
        integer_ticks(ax, "x")
    if limit is not None:
        threshold(ax, limit, limit_label or "limit", [0.0, *values], axis="x")
    for index, value in enumerate(values):
        shown = f"{value:,.0f}" if integer else human_number(value)
        ax.text(value, index, f" {shown}", va="center", fontsize=9)
    fig.tight_layout()
    return fig


def integer_ticks(ax: Any, axis: str = "y") -> None:
    """Whole-number ticks on ``axis`` ('x' or 'y'): counts have no quarter runs."""
    from matplotlib.ticker import MaxNLocator

    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def add_note(ax: Any, text: str) -> None:
    """A short grey note in the plot's upper right corner (below the notes already there)."""
    box = {"facecolor": "white", "alpha": 0.8, "edgecolor": "none"}
    notes = sum(1 for t in ax.texts if t.get_transform() == ax.transAxes)
    y = 0.97 - 0.09 * notes
    ax.text(0.99, y, text, transform=ax.transAxes, ha="right", va="top", fontsize=8,
            color="#555555", bbox=box)  # fmt: skip


def fit_time_axis(
    ax: Any,
    moments: Sequence[datetime | None],
    *,
    window: timedelta = timedelta(days=1),
    note: str | None = ONE_POINT_NOTE,
) -> None:
    """Fit the x axis to ``moments`` with concise date ticks (no '52:46.700000').

    Several moments: their span and 5 % either side. One moment (or several within a second):
    ``window`` around it, and ``note`` when there is only one.
    """
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    known = sorted({m for m in moments if m is not None})
    if not known:
        return
    first, last = known[0], known[-1]
    span = last - first
    if span < timedelta(seconds=1):
        ax.set_xlim(first - window / 2, last + window / 2)
        if note and len(known) == 1:
            add_note(ax, note)
    else:
        ax.set_xlim(first - span * 0.05, last + span * 0.05)


def fit_value_axis(ax: Any, values: Sequence[float | None]) -> None:
    """A series that never changes gets a window from zero to twice its value (not
    matplotlib's hair-thin band around it, with ticks in the fourth decimal)."""
    known = {float(v) for v in values if v is not None and v == v}
    if len(known) != 1:
        return
    value = known.pop()
    # threshold lines drawn across the plot stay in view
    marks = [float(y) for line in ax.get_lines() if line.get_transform() != ax.transData
             for y in line.get_ydata()]  # fmt: skip
    low = min(0.0, 2 * value, *marks)
    high = max(0.0, 2 * value, *marks) or 1.0
    ax.set_ylim(low, high * 1.05 if high > 0 else high)


def threshold(
    ax: Any,
    value: float,
    label: str,
    data: Sequence[float],
    *,
    axis: str = "y",
    colour: str = "#c0262d",
    linestyle: str = "--",
) -> bool:
    """A threshold line at ``value`` when it fits the data's scale (the axis would span at
    most :data:`SPAN_FACTOR` times the data), else a note naming it; True when drawn."""
    known = [float(v) for v in data if v is not None and v == v]
    low, high = (min(known), max(known)) if known else (value, value)
    extent = max(high - low, abs(high), abs(low), 1e-9)
    if max(high, value) - min(low, value) <= SPAN_FACTOR * extent:
        line = ax.axhline if axis == "y" else ax.axvline
        line(value, color=colour, linestyle=linestyle, label=label)
        ax.legend(loc="best", fontsize=8)
        return True
    side = "above" if value > high else "below"
    add_note(ax, f"{label}: far {side} every value shown")
    return False


def overstretched_axes(fig: Any, factor: float = SPAN_FACTOR) -> list[str]:
    """Every axis of ``fig`` that spans more than ``factor`` times the data drawn on it.

    The data are the lines, markers, bars and bands in data coordinates (threshold lines
    across the whole plot are not data). An axis whose data is a single value is compared
    with one day on a date axis and with the value itself on a value axis (zero to twice a
    constant value is fine, zero to a thousand times it is not; at least 1).
    """
    import matplotlib.dates as mdates
    from matplotlib.patches import Rectangle

    found = []
    for ax in fig.axes:
        xs: list[float] = []
        ys: list[float] = []
        for line in ax.get_lines():
            if line.get_transform() != ax.transData:
                continue  # axhline/axvline: a threshold, not data
            data = line.get_xydata()
            xs.extend(float(x) for x in data[:, 0] if x == x)
            ys.extend(float(y) for y in data[:, 1] if y == y)
        for patch in ax.patches:
            if isinstance(patch, Rectangle) and patch.get_transform() == ax.transData:
                xs.extend([patch.get_x(), patch.get_x() + patch.get_width()])
                ys.extend([patch.get_y(), patch.get_y() + patch.get_height()])
        for collection in ax.collections:
            if collection.get_transform() == ax.transData:
                for path in collection.get_paths():
                    xs.extend(float(x) for x in path.vertices[:, 0])
                    ys.extend(float(y) for y in path.vertices[:, 1])
        for name, values, limits, axis in (
            ("x", xs, ax.get_xlim(), ax.xaxis),
            ("y", ys, ax.get_ylim(), ax.yaxis),
        ):
            if not values:
                continue
            extent = max(values) - min(values)
            if extent <= 0:
                is_date = isinstance(axis.get_major_locator(), mdates.DateLocator)
                extent = 1.0 if is_date else max(abs(values[0]), 1.0)
            span = abs(limits[1] - limits[0])
            if span > factor * extent:
                title = ax.get_title() or "(untitled)"
                found.append(f"{title}: {name} axis spans {span / extent:.0f} times its data")
    return found


def png(fig: Any, dpi: int = DPI) -> bytes:
    """The figure as PNG bytes, cropped to what is drawn (a title wider than the figure
    grows it), as ``savefig(bbox_inches="tight")`` crops it, and drawn once.

    savefig's tight crop first draws the figure without rendering it, only to measure it,
    then draws it again. A figure laid out once (``tight_layout``, at the dpi it is shown at:
    its layout engine is then a placeholder that does nothing) is measured for the crop on
    the renderer that laid it out, and savefig, given that box and no layout engine, draws
    it once: the same pixels, about a fifth less work.
    """
    from matplotlib import rcParams
    from matplotlib.layout_engine import PlaceHolderLayoutEngine

    engine = fig.get_layout_engine()
    measured = fig.dpi == dpi and hasattr(fig.canvas, "get_renderer")
    settled = measured and isinstance(engine, PlaceHolderLayoutEngine | None)
    box: Any = "tight"
    if settled:
        box = fig.get_tightbbox(fig.canvas.get_renderer()).padded(rcParams["savefig.pad_inches"])
        fig.set_layout_engine(None)
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=dpi, bbox_inches=box,
                    pil_kwargs={"compress_level": PNG_COMPRESSION})  # fmt: skip
    finally:
        if settled:
            fig.set_layout_engine(engine)
    return buffer.getvalue()


def show(fig: Any) -> None:
    """Display a figure inline as PNG (whatever the backend) and release it."""
    from IPython.display import Image, display

    plt = pyplot()
    display(Image(data=png(fig)))  # type: ignore[no-untyped-call]
    plt.close(fig)
