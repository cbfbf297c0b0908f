"""Plots that work at one point and at a thousand: checked on the matplotlib axes the views
build (not on pixels). No axis spans more than ten times its data, counts have whole-number
ticks, a single point gets a window and a note, titles are unique, thresholds off the scale
are named instead of stretching the axis."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from powrops.findings import Severity
from powrops.growth import view as growth_view
from powrops.integrity import view as integrity_view
from powrops.quarterly import Review
from powrops.quarterly import view as quarterly_view
from powrops.quarterly.model import Quarter
from powrops.quarterly.sections import Section
from powrops.reports.plotting import (
    DPI,
    ONE_POINT_NOTE,
    barh,
    fit_time_axis,
    overstretched_axes,
    png,
    pyplot,
    threshold,
)
from powrops.retention import view as retention_view

START = datetime(2026, 10, 1, 3, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _close_figures() -> Iterator[None]:
    yield
    pyplot().close("all")


def _texts(fig: Any) -> str:
    return " ".join(t.get_text() for ax in fig.axes for t in ax.texts)


def _moments(n: int) -> list[datetime]:
    return [START + timedelta(hours=2 * i) for i in range(n)]


def test_the_check_finds_a_plot_stretched_around_its_data() -> None:
    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot([START], [5.0], marker="o")  # matplotlib alone: years around a single date
    assert overstretched_axes(fig), "a single date on matplotlib's default axis passed"
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    ax.set_ylim(0, 100)
    assert overstretched_axes(fig) == ["(untitled): y axis spans 100 times its data"]


@pytest.mark.parametrize("n", [1, 2, 1000])
def test_time_axis_fits_one_point_and_a_thousand(n: int) -> None:
    fig, ax = pyplot().subplots()
    moments = _moments(n)
    ax.plot(moments, list(range(n)), marker="o")
    fit_time_axis(ax, moments)
    assert overstretched_axes(fig) == []
    assert (ONE_POINT_NOTE in _texts(fig)) is (n == 1)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert labels and not any("." in label and ":" in label for label in labels), labels


def test_a_threshold_off_the_scale_is_named_not_drawn() -> None:
    fig, ax = pyplot().subplots()
    ax.plot(_moments(3), [3.0, 4.0, 3.5])
    assert threshold(ax, 3600, "objective 1 h", [3.0, 4.0, 3.5]) is False
    assert "objective 1 h: far above every value shown" in _texts(fig)
    assert threshold(ax, 5, "warning", [3.0, 4.0, 3.5]) is True
    assert overstretched_axes(fig) == []


def test_bar_charts_of_counts_have_whole_number_ticks() -> None:
    fig = barh(["succeeded", "failed"], [1.0, 0.0], title="runs", xlabel="runs", integer=True)
    fig.canvas.draw()
    ticks = fig.axes[0].get_xticks()
    assert all(float(t).is_integer() for t in ticks), ticks
    assert "1.00" not in _texts(fig) and " 1" in _texts(fig)


@pytest.mark.parametrize("n", [1, 1000])
def test_integrity_trend(n: int) -> None:
    rows = [
        {"time": f"{m:%Y-%m-%d %H:%M}", "status": "OK", "failed checks": i % 3}
        for i, m in enumerate(_moments(n))
    ]
    fig = integrity_view.plot_trend(rows)
    fig.canvas.draw()
    assert overstretched_axes(fig) == []
    assert all(float(t).is_integer() for t in fig.axes[0].get_yticks())
    assert (ONE_POINT_NOTE in _texts(fig)) is (n == 1)


@pytest.mark.parametrize("n", [1, 1000])
def test_growth_cache_plot(n: int) -> None:
    history = [
        {"taken_at": m, "hit_rate": 0.99 + (i % 10) / 1000} for i, m in enumerate(_moments(n))
    ]
    fig = growth_view.plot_cache(history, {"cache": {"hit_rate": None}})
    assert overstretched_axes(fig) == []


@pytest.mark.parametrize("n", [1, 1000])
def test_retention_growth_counts(n: int) -> None:
    first = datetime(2006, 1, 2)
    growth = [
        {"week": (first + timedelta(weeks=i)).date().isoformat(), "rows": 10 + i, "files": 1,
         "bytes": 100}
        for i in range(n)
    ]  # fmt: skip
    fig = retention_view.plot_growth(growth)
    fig.canvas.draw()
    assert fig.get_size_inches()[1] < 6  # a line over time, not a bar per week
    assert overstretched_axes(fig) == []
    assert all(float(t).is_integer() for t in fig.axes[0].get_yticks())
    assert (ONE_POINT_NOTE in _texts(fig)) is (n == 1)


def _review(n: int) -> Review:
    at = _moments(n)
    sections = {
        "drills": Section("drills", "Drills", Severity.OK, "", series={
            "at": at, "rto_s": [3.0 + i % 5 for i in range(n)],
            "rpo_s": [0.5 + i % 3 for i in range(n)], "objective_rto_s": [3600.0],
            "objective_rpo_s": [900.0],
        }),
        "growth": Section("growth", "Growth", Severity.OK, "", series={
            "at": at, "bytes": [17e6 + 25e3 * i for i in range(n)],
            "forecast_at": [at[-1], at[-1] + timedelta(days=60)],
            "forecast_bytes": [17e6 + 25e3 * n, 17e6 + 25e3 * (n + 60)],
        }),
        "performance": Section("performance", "Performance", Severity.OK, "", series={
            "at": at, "cache_hit_pct": [99.9] * n, "dead_tuple_pct": [1.5] * n,
            "dead_tuples": [120 + i for i in range(n)], "mean_query_ms": [0.4] * n,
            "slow_queries": [i % 2 for i in range(n)],
        }),
        "backups": Section("backups", "Backups", Severity.OK, "",
                           headline={"backup_runs": n, "backup_failures": 0}),
    }  # fmt: skip
    return Review(Quarter(2026, 4), START + timedelta(days=80), sections, [])


@pytest.mark.parametrize("n", [1, 2, 1000])
def test_quarterly_review_plots(n: int) -> None:
    review = _review(n)
    titles: list[str] = []
    for name in ("drills", "growth", "performance", "backups"):
        fig = quarterly_view._PLOTS[name](review)
        if name == "performance" and n == 1:
            assert fig is None  # one snapshot: no five plots of one dot each
            continue
        assert fig is not None, name
        fig.canvas.draw()
        assert overstretched_axes(fig) == [], name
        titles += [ax.get_title() for ax in fig.axes]
        if name == "backups":
            assert all(float(t).is_integer() for t in fig.axes[0].get_xticks())
        if name == "drills":
            assert "objective 60 min: far above" in _texts(fig)  # named, not stretching the axis
    assert len(titles) == len(set(titles)), titles


def test_quarterly_growth_with_one_snapshot_shows_the_growth_reports_rate() -> None:
    """The review's growth is the growth report's figure, not 'no trend yet' beside it."""
    from powrops.quarterly.model import Evidence, ReportRun, Snapshot
    from powrops.quarterly.sections import growth

    at = START + timedelta(days=10)
    snap = Snapshot(at, {"volume": {"total_size_bytes": 17684159}})
    ev = Evidence(Quarter(2026, 4), START + timedelta(days=20), snapshots=[snap])
    assert "no trend yet" in growth(ev).summary
    figures = {"growth_bytes_per_day": 25088.3, "growth_source": "timestamps"}
    run = ReportRun("growth_report", "r1", "OK", at, figures=figures)
    ev.runs.append(run)
    section = growth(ev)
    assert "24.5 KiB/day as the growth report estimates it" in section.summary, section.summary
    assert section.headline["growth_bytes_per_day"] == 25088
    assert section.headline["forecast_bytes"] > 17684159
    fig = quarterly_view.plot_growth(Review(Quarter(2026, 4), ev.now, {"growth": section}, []))
    assert overstretched_axes(fig) == [] and "one measured size" in _texts(fig)


def test_quarterly_review_shows_the_previous_quarter_beside_this_one() -> None:
    from powrops.quarterly import previous_figures
    from powrops.quarterly.model import Evidence, ReportRun

    ev = Evidence(Quarter(2026, 4), START + timedelta(days=20))
    assert previous_figures(ev) is None
    old = {"quarter": "2026Q3", "backup_success_pct": 75.0, "forecast_bytes": 2**30}
    ev.runs += [
        ReportRun("quarterly_review", "a", "OK", START - timedelta(days=2), figures=old),
        ReportRun("quarterly_review", "b", "OK", START - timedelta(days=90),
                  figures={**old, "quarter": "2026Q2", "backup_success_pct": 10.0}),
    ]  # fmt: skip
    assert previous_figures(ev) == old
    review = _review(3)
    review.sections["backups"].headline.update({"backup_success_pct": 100.0})
    review.previous = old
    rows = {r["figure"]: r for r in quarterly_view.comparison_rows(review)}
    assert rows["backup success"] == {
        "figure": "backup success",
        "2026Q3": "75 %",
        "2026Q4": "100 %",
    }
    assert rows["forecast"]["2026Q3"] == "1.0 GiB" and rows["forecast"]["2026Q4"] == "-"


def test_quarterly_growth_from_minutes_of_snapshots_is_not_a_trend() -> None:
    """Four snapshots minutes apart fit a wild rate; the review gives the growth report's."""
    from powrops.quarterly.model import Evidence, ReportRun, Snapshot
    from powrops.quarterly.sections import growth

    at = START + timedelta(days=60)
    snaps = [
        Snapshot(at + timedelta(minutes=5 * i), {"volume": {"total_size_bytes": 9e6 + 2e5 * i}})
        for i in range(4)
    ]
    figures = {"growth_bytes_per_day": 1843.0, "growth_source": "timestamps"}
    ev = Evidence(Quarter(2026, 4), at + timedelta(days=1), snapshots=snaps,
                  runs=[ReportRun("growth_report", "r", "OK", at, figures=figures)])  # fmt: skip
    section = growth(ev)
    assert section.headline["growth_bytes_per_day"] == 1843, section.summary
    assert "4 snapshots over 0.0 days" in section.summary


def test_a_constant_series_gets_a_window_from_zero() -> None:
    review = _review(3)
    review.sections["drills"].series["rpo_s"] = [0.001, 0.001, 0.001]
    fig = quarterly_view.plot_drills(review)
    rpo = fig.axes[1]
    assert rpo.get_ylim()[0] == 0 and 0.002 <= rpo.get_ylim()[1] <= 0.0022
    assert overstretched_axes(fig) == []


@pytest.mark.parametrize("n", [1, 1000])
def test_backup_timeline_fits_one_backup_and_a_thousand(n: int) -> None:
    from powrops.verify import view as verify_view
    from powrops.verify.report import BackupRow, RecoveryWindow, VerificationReport

    report = VerificationReport("file:///repo", None, None, START + timedelta(days=100))
    for at in _moments(n):
        label = f"{at:%Y%m%dT%H%M%S}F"
        report.backups.append(BackupRow(label, "full", "ok", None, [label], 1, "0/1", "0/2", at,
                                        at + timedelta(minutes=2), 100, "18"))  # fmt: skip
        end = at + timedelta(minutes=2) if n == 1 else at + timedelta(hours=3)
        report.windows.append(RecoveryWindow(label, 1, "0/2", at + timedelta(minutes=2), "0/3",
                                             end, None, None))  # fmt: skip
    fig = verify_view.plot_timeline(report)
    fig.canvas.draw()
    assert fig.get_size_inches()[1] < 16
    assert overstretched_axes(fig) == []
    assert ("the newest 40 of 1000 backups" in _texts(fig)) is (n == 1000)


def _texts_measured_by_png(fig: Any, monkeypatch: pytest.MonkeyPatch) -> int:
    from matplotlib.backends.backend_agg import RendererAgg

    calls: list[str] = []
    measure = RendererAgg.get_text_width_height_descent

    def counted(self: Any, text: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(text)
        return measure(self, text, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(RendererAgg, "get_text_width_height_descent", counted)
        png(fig)
    return len(calls)


def test_a_figure_is_laid_out_at_the_dpi_it_is_shown_at(monkeypatch: pytest.MonkeyPatch) -> None:
    labels, values = ["public.workouts", "public.workout_sets", "ops.check_runs"], [3.0, 9.0, 1.0]
    fig = barh(labels, values, title="Rows per table", xlabel="rows")
    assert fig.dpi == DPI
    shown = _texts_measured_by_png(fig, monkeypatch)
    other, ax = pyplot().subplots(figsize=fig.get_size_inches(), dpi=DPI - 10)
    ax.barh(labels, values)
    ax.set_title("Rows per table")
    ax.set_xlabel("rows")
    other.tight_layout()
    # laid out at another dpi, every text is measured again when the PNG is drawn
    assert shown < _texts_measured_by_png(other, monkeypatch)
    assert png(fig)[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_figures_draw_their_text_without_hinting() -> None:
    import matplotlib

    matplotlib.rcParams["text.hinting"] = "default"
    fig = barh(["public.workouts"], [3.0], title="Rows per table", xlabel="rows")
    assert matplotlib.rcParams["text.hinting"] == "no_hinting"
    assert png(fig)[:8] == b"\x89PNG\r\n\x1a\n"


def _pixels(data: bytes) -> Any:
    import numpy as np
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)))


def _draws(fig: Any, monkeypatch: pytest.MonkeyPatch, save: Any) -> tuple[int, bytes]:
    """How many times ``save(fig)`` draws the figure (rendered or not), and what it returns."""
    from matplotlib.figure import Figure

    calls: list[Any] = []
    draw = Figure.draw

    def counted(self: Any, renderer: Any) -> Any:
        calls.append(renderer)
        return draw(self, renderer)

    with monkeypatch.context() as patch:
        patch.setattr(Figure, "draw", counted)
        data = save(fig)
    return len(calls), data


def _tight(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


@pytest.mark.parametrize("title", ["Rows per table", "A title far wider than the figure " * 6])
def test_a_figure_is_drawn_once_with_the_pixels_of_a_tight_savefig(
    title: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    labels, values = ["public.workouts", "public.workout_sets"], [3.0, 9.0]
    fig = barh(labels, values, title=title, xlabel="rows", limit=5.0)
    engine = fig.get_layout_engine()
    draws, shown = _draws(fig, monkeypatch, png)
    assert draws == 1
    assert fig.get_layout_engine() is engine
    tight_draws, tight = _draws(fig, monkeypatch, _tight)
    assert tight_draws == 2  # what png saves: a draw without rendering, to measure the crop
    a, b = _pixels(shown), _pixels(tight)
    assert a.shape == b.shape and (a == b).all()
    assert a.shape[1] > fig.get_size_inches()[0] * DPI or len(title) < 20  # the title grew it


def test_a_figure_with_a_layout_engine_is_laid_out_as_it_is_drawn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fig, ax = pyplot().subplots(layout="constrained")
    ax.plot([0, 1], [0, 1])
    ax.set_title("Constrained")
    draws, shown = _draws(fig, monkeypatch, png)
    assert draws == 2  # its engine lays it out on the first draw: savefig's own crop
    a, b = _pixels(shown), _pixels(_tight(fig))
    assert a.shape == b.shape and (a == b).all()


def _zlib_level(data: bytes) -> int:
    """The compression level a PNG's first IDAT chunk names in its zlib header (FLEVEL:
    0 the fastest, 2 zlib's default, 3 the smallest)."""
    start = data.index(b"IDAT") + 4
    return data[start + 1] >> 6


def test_a_figure_png_is_compressed_at_the_fastest_level() -> None:
    fig = barh(["public.workouts", "public.workout_sets"], [3.0, 9.0], title="Rows", xlabel="rows")
    shown = png(fig)
    assert _zlib_level(shown) == 0
    assert _zlib_level(_tight(fig)) == 2  # savefig's own: Pillow's default, level 6
    assert (_pixels(shown) == _pixels(_tight(fig))).all()


def _titled(auto: bool) -> Any:
    """A date plot with counts in the millions (the y axis shows its '1e6' offset above the
    axes, the one tick text there) and a long title, as a report draws it, or with
    matplotlib's automatic title placement."""
    import matplotlib

    plt = pyplot()
    with matplotlib.rc_context({"axes.titley": None} if auto else {}):
        fig, ax = plt.subplots(figsize=(9, 3.2))
        ax.plot(_moments(5), [1.2e6, 2.5e6, 3.1e6, 3.3e6, 4.0e6], marker="o")
        ax.set_title("Archived rows (cumulative, by week), a title as long as the report's")
        ax.set_ylabel("rows")
        fit_time_axis(ax, _moments(5))
        fig.tight_layout()
    return fig


def _measured(fig: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[int, bytes]:
    """How many times ``png(fig)`` measures an axis's tick labels, and the PNG."""
    from matplotlib.axis import Axis

    calls: list[Any] = []
    measure = Axis.get_tightbbox

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(self)
        return measure(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(Axis, "get_tightbbox", counted)
        data = png(fig)
    return len(calls), data


def test_titles_are_placed_where_matplotlib_places_them_without_measuring_the_ticks_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fixed, shown = _measured(_titled(auto=False), monkeypatch)
    auto, automatic = _measured(_titled(auto=True), monkeypatch)
    assert fixed < auto
    a, b = _pixels(shown), _pixels(automatic)
    assert a.shape == b.shape and (a == b).all()
    bars = barh(["public.workouts", "public.workout_sets"], [3.0, 9.0], title="Rows", xlabel="n")
    assert bars.axes[0].title.get_position()[1] == 1.0
