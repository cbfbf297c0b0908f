"""Plots for reports: matplotlib on the Agg backend, shown inline as PNG (no external files).

Every plot has a title and axis labels with units, so it reads on its own in a meeting.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
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
) -> Any:
    """A horizontal bar chart (one bar per label), optionally with a vertical limit line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 0.45 * max(len(labels), 2) + 1.2))
    ax.barh(list(labels), list(values), color=list(colours) if colours else "#3a6ea5")
    ax.invert_yaxis()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    if limit is not None:
        ax.axvline(limit, color="#c0262d", linestyle="--", label=limit_label)
        if limit_label:
            ax.legend(loc="lower right")
    for index, value in enumerate(values):
        ax.text(value, index, f" {value:.2f}", va="center", fontsize=9)
    fig.tight_layout()
    return fig


def png(fig: Any, dpi: int = 110) -> bytes:
    """The figure as PNG bytes."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def show(fig: Any) -> None:
    """Display a figure inline as PNG (whatever the backend) and release it."""
    from IPython.display import Image, display

    plt = _pyplot()
    display(Image(data=png(fig)))  # type: ignore[no-untyped-call]
    plt.close(fig)
