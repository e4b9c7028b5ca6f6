"""Smoothing a noisy curve as TensorBoard's slider does: a debiased exponential moving average over the
points in order. The weight steps through SMOOTHING; 0 is the curve as recorded."""

from __future__ import annotations

import math
from collections.abc import Sequence

SMOOTHING = (0.0, 0.6, 0.8, 0.9, 0.95, 0.99)


def ema(ys: Sequence[float], weight: float) -> list[float]:
    """TensorBoard's "classic" smoothing: s_t = w·s_(t-1) + (1-w)·y_t from s_0 = 0, divided by 1 - w^t (t counts
    the finite points so far) so the first points are not pulled towards zero. A non-finite value is kept as
    it is and left out of the average; a constant series is returned unchanged (no rounding noise)."""
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"a smoothing weight is in [0, 1), not {weight}")
    if weight == 0.0 or not ys or all(y == ys[0] for y in ys):
        return list(ys)
    out, last, n = [], 0.0, 0
    for y in ys:
        if not math.isfinite(y):
            out.append(y)
            continue
        last = last * weight + (1.0 - weight) * y
        n += 1
        out.append(last / (1.0 - weight**n))
    return out


def step_smoothing(weight: float, by: int) -> float:
    """The next weight of the slider up (by > 0) or down, stopping at its ends."""
    i = min(range(len(SMOOTHING)), key=lambda k: abs(SMOOTHING[k] - weight))
    return SMOOTHING[max(0, min(len(SMOOTHING) - 1, i + by))]


def smoothing_label(weight: float) -> str:
    """'raw' or 'EMA 0.9', as a header or an axis says it."""
    return "raw" if weight == 0.0 else f"EMA {weight:g}"
