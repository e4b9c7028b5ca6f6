"""Line charts on a PlotextPlot: thinned to the terminal, a colour per line, readable y labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual_plotext import PlotextPlot

MAX_POINTS = 400  # per line: enough for a terminal's width, cheap to draw
# distinct in a 256-colour terminal, and never the chance line's gray
COLORS = ("blue+", "orange", "green+", "magenta+", "cyan+", "red+", "yellow+", "white")


@dataclass
class Line:
    label: str
    points: Sequence[tuple[float, float]]
    side: str = "left"  # the y axis it reads against
    color: str | None = None  # default: by its place in the plot
    marker: str | None = None


def thin(points: Sequence[tuple[float, float]]) -> tuple[list[float], list[float]]:
    stride = max(1, len(points) // MAX_POINTS)
    pts = list(points[::stride])
    if points and pts[-1] != points[-1]:
        pts.append(points[-1])
    return [p[0] for p in pts], [p[1] for p in pts]


def flat_axis(lines: list[Line]) -> tuple[list[float], list[str]] | None:
    """Ticks for a plot whose left-axis values are all one number: plotext spreads such an axis over an
    arbitrary span and labels rows beside the value (a constant 0.003 read as 0.00350). The value gets a
    row of its own, labelled exactly, between two neighbours."""
    ys = {round(y, 12) for line in lines if line.side == "left" for _, y in line.points}
    if len(ys) != 1:
        return None
    (v,) = ys
    pad = abs(v) * 0.5 or 1.0
    ticks = [v - pad, v, v + pad]
    return ticks, [f"{t:.4g}" for t in ticks]


def draw(
    widget: PlotextPlot,
    title: str,
    lines: list[Line],
    hline: float | None = None,
    ylim: tuple[float, float] | None = None,
    int_x: bool = False,
    xlabel: str = "step",
) -> None:
    plt = widget.plt
    plt.clear_data()
    plt.clear_figure()
    plt.title(title)
    plt.xlabel(xlabel)
    for i, line in enumerate(lines):
        if line.points:
            x, y = thin(line.points)
            plt.plot(
                x,
                y,
                label=line.label or None,
                yside=line.side,
                color=line.color or COLORS[i % len(COLORS)],
                marker=line.marker or "hd",
            )
    if hline is not None and any(line.points for line in lines):
        plt.hline(hline, "gray")
    flat = flat_axis(lines) if ylim is None and hline is None else None
    if flat is not None:
        plt.ylim(flat[0][0], flat[0][-1])
        plt.yticks(*flat)
    if ylim is not None:
        plt.ylim(*ylim)
    if int_x:
        xs = sorted({float(p[0]) for line in lines for p in line.points})
        plt.xticks(xs)
    widget.refresh()
