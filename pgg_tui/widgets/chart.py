"""Line charts on a PlotextPlot: thinned to the terminal, a colour per line, readable y labels; optionally
smoothed (the points as recorded stay behind, faint) and on a log y axis."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from textual_plotext import PlotextPlot

from pgg_tui.core.curves import log_ticks
from pgg_tui.core.smoothing import ema, smoothing_label

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


def smoothed(points: Sequence[tuple[float, float]], weight: float) -> list[tuple[float, float]]:
    """The points with their values replaced by the EMA of the values up to each (before thinning: the
    average is over every point recorded, not over what fits on the screen)."""
    return list(zip([p[0] for p in points], ema([p[1] for p in points], weight)))


def draw(
    widget: PlotextPlot,
    title: str,
    lines: list[Line],
    hline: float | None = None,
    ylim: tuple[float, float] | None = None,
    int_x: bool = False,
    xlabel: str = "step",
    smoothing: float = 0.0,
    log_y: bool = False,
) -> bool:
    """Draw the lines; the x label also says the smoothing and the y scale. With `smoothing` each line is its
    EMA and a solid line's points as recorded are scattered faint (dim) behind it. A log y axis is refused
    for a plot with a value <= 0 anywhere (the plot stays linear and its x label says so): returns whether
    a log y asked for was drawn (True when none was asked for).

    The log axis is drawn as log10 of the values on a linear plotext axis, with ticks labelled in values:
    plotext's own yscale("log") takes the log of its stored data at every render, so a second render (a
    resize, a toast over the plot) took the log of the logs."""
    plt = widget.plt
    plt.clear_data()
    plt.clear_figure()
    plt.title(title)
    values = [y for line in lines for _, y in line.points] + ([hline] if hline is not None else [])
    log = log_y and bool(values) and all(v > 0 for v in values if not math.isnan(v)) and (ylim is None or ylim[0] > 0)
    notes = [smoothing_label(smoothing)] if smoothing else []
    if log_y:
        notes.append("log y" if log else "log y refused: values ≤ 0")
    plt.xlabel(" · ".join([xlabel, *notes]))

    def scaled(points: Sequence[tuple[float, float]]) -> tuple[list[float], list[float]]:
        x, y = thin(points)
        return x, [math.log10(v) for v in y] if log else y

    colors = [line.color or COLORS[i % len(COLORS)] for i, line in enumerate(lines)]
    if smoothing:  # first, so that every smoothed line is drawn over them
        for line, color in zip(lines, colors):
            if line.points and line.marker is None:
                plt.scatter(*scaled(line.points), yside=line.side, color=color, marker="braille", style="dim")
    for line, color in zip(lines, colors):
        if line.points:
            x, y = scaled(smoothed(line.points, smoothing) if smoothing else line.points)
            plt.plot(x, y, label=line.label or None, yside=line.side, color=color, marker=line.marker or "hd")
    if hline is not None and any(line.points for line in lines):
        plt.hline(math.log10(hline) if log else hline, "gray")
    if log:
        for side in {line.side for line in lines if line.points}:
            ys = [math.log10(y) for line in lines if line.side == side for _, y in line.points if math.isfinite(y)]
            ys += [math.log10(hline)] if hline is not None and side == "left" else []
            if not ys:
                continue
            ticks, labels = log_ticks(min(ys), max(ys))
            axis = 1 if side == "left" else 2  # plotext's number for the side (its hints take no name)
            if max(ys) - min(ys) < 1e-12:  # one value: its row between two labelled neighbours
                plt.ylim(ticks[0], ticks[-1], yside=axis)
            plt.yticks(ticks, labels, yside=axis)
    else:
        flat = flat_axis(lines) if ylim is None and hline is None else None
        if flat is not None:
            plt.ylim(flat[0][0], flat[0][-1])
            plt.yticks(*flat)
    if ylim is not None:
        plt.ylim(*(math.log10(v) for v in ylim) if log else ylim)
    if int_x:
        xs = sorted({float(p[0]) for line in lines for p in line.points})
        plt.xticks(xs)
    widget.refresh()
    return log or not log_y
