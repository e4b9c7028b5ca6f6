"""Curves across runs: the mean and band over seeds, checked by hand on a store written directly."""

import pytest

from engine.config import to_json
from engine.registry import plan_runs
from engine.store import Store
from pgg_tui.core.curves import chart_metrics, fetch_curves
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
