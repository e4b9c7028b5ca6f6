"""Curves across runs: the mean and band over seeds, checked by hand on a store written directly; the
smoothing and the axes' ticks, by hand."""

import math
import re

import pytest

from engine.config import to_json
from engine.registry import plan_runs
from engine.store import Store
from pgg_tui.core.curves import chart_metrics, clock_axis, clock_label, fetch_curves, log_ticks, timed_metrics
from pgg_tui.core.smoothing import SMOOTHING, ema, step_smoothing
from pgg_tui.widgets.chart import Line, flat_axis


def test_mean_and_sample_std_at_each_step_over_the_seeds_that_reached_it(db):
    st = Store.open(db)
    a, b = st.queue(plan_runs("prompt", "toy-sentiment", seeds="0-1"), to_json)
    (c,) = st.queue(plan_runs("prompt", "toy-sentiment", "seq-reinforce"), to_json)
    m = lambda step, v: dict(step=step, phase="policy", name="dev/score", value=v)  # noqa: E731
    st.append(a, [m(10, 1.0), m(20, 3.0), m(20, 4.0)], [], [], None)  # the last value at a step counts
    st.append(b, [m(10, 3.0)], [], [], None)  # a run still at step 10
    st.append(c, [m(10, 7.0), dict(step=10, phase="policy", name="policy/loss", value=0.5)], [], [], None)
    pgg, seq = fetch_curves(st, [a, b, c], "dev/score", grouped=True)
    assert pgg.label == "pgg · toy-sentiment (n=2)" and pgg.xs == [10.0, 20.0]
    assert pgg.ys == [2.0, 4.0]
    assert pgg.lower == pytest.approx([2.0 - 2**0.5, 4.0]) and pgg.upper == pytest.approx([2.0 + 2**0.5, 4.0])
    assert (seq.ys, seq.lower, seq.n) == ([7.0], None, 1)  # one seed: no band
    each = fetch_curves(st, [a, b, c], "dev/score")
    assert [cv.ys for cv in each] == [[1.0, 4.0], [3.0], [7.0]]
    assert chart_metrics(st, [a, b, c]) == ["dev/score", "policy/loss"]


def test_a_flat_series_gets_its_value_as_a_labelled_row():
    ticks, labels = flat_axis([Line("x", [(0, 0.003), (1, 0.003)])])
    assert labels[1] == "0.003" and ticks[0] < 0.003 < ticks[2]
    assert flat_axis([Line("x", [(0, 0.003), (1, 0.004)])]) is None


def test_the_smoothing_is_tensorboards_debiased_ema_by_hand():
    """s_t = w s_(t-1) + (1 - w) y_t from s_0 = 0, over 1 - w^t. With w = 0.5 and y = 1, 2, 3:
    0.5 / 0.5 = 1; (0.25 + 1) / 0.75 = 5/3; (0.625 + 1.5) / 0.875 = 17/7."""
    assert ema([1.0, 2.0, 3.0], 0.5) == pytest.approx([1.0, 5 / 3, 17 / 7])
    nan = float("nan")
    out = ema([1.0, nan, 3.0], 0.5)  # a NaN stays where it is and does not count: 3 is the 2nd point
    assert out[0] == 1.0 and math.isnan(out[1]) and out[2] == pytest.approx((0.25 + 1.5) / 0.75)
    assert ema([1.0, 2.0], 0.0) == [1.0, 2.0] and ema([0.003] * 3, 0.9) == [0.003] * 3
    with pytest.raises(ValueError):
        ema([1.0], 1.0)
    assert [step_smoothing(w, 1) for w in SMOOTHING] == [0.6, 0.8, 0.9, 0.95, 0.99, 0.99]
    assert step_smoothing(0.0, -1) == 0.0 and step_smoothing(0.9, -1) == 0.8


def test_a_wall_time_axis_has_round_ticks_under_their_columns():
    assert [clock_label(s) for s in (0, 45, 120, 90, 3600, 5400)] == ["0", "45s", "2m", "1m30s", "1h", "1h30m"]
    rule, labels = clock_axis(201, 116)  # 3m21s over 116 cells: a tick every 15 s (8.7 cells apart)
    assert len(rule) == 116 and rule.count("┬") == 14
    found = [(m.start(), m.group()) for m in re.finditer(r"\S+", labels)]
    assert [label for _, label in found][:5] == ["0", "15s", "30s", "45s", "1m"] and found[-1][1] == "3m15s"
    assert all(rule[col] == "┬" for col, _ in found[:-1])  # the last, pulled left to fit, ends under the rule
    assert [col for col, _ in found][4] == round(60 / 201 * 116)  # t sits at round(t / span · width)
    rule, labels = clock_axis(5 * 3600, 60)  # the last label is pulled left to fit
    assert labels.endswith("5h") and len(labels) == 60 and rule.endswith("┬")


def test_log_ticks_are_round_values():
    ticks, labels = log_ticks(-5, 3)
    assert labels == ["0.0001", "0.01", "1", "100"] and ticks == pytest.approx([-4, -2, 0, 2])
    assert log_ticks(0, 2)[1] == ["1", "10", "100"]
    assert log_ticks(math.log10(50), math.log10(93))[1] == ["50", "58.4", "68.2", "79.6", "93"]  # too narrow


def test_a_runs_metrics_with_their_times_after_an_id(db):
    st = Store.open(db)
    (a,) = st.queue(plan_runs("prompt", "toy-sentiment"), to_json)
    st.append(
        a,
        [dict(step=s, phase="policy", name="policy/loss", value=1.0 / s, time=100.0 + s) for s in (1, 2, 3)],
        [],
        [],
        None,
    )
    rows = timed_metrics(st, a)
    assert [(name, phase, t, v) for _, name, phase, t, v in rows] == [
        ("policy/loss", "policy", 101.0, 1.0),
        ("policy/loss", "policy", 102.0, 0.5),
        ("policy/loss", "policy", 103.0, 1 / 3),
    ]
    assert [r[3] for r in timed_metrics(st, a, after_id=rows[0][0])] == [102.0, 103.0]
