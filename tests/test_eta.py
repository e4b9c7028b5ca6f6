"""The ETA counts the reward trainings still to come, at their measured cost, and a resumed run's own rate."""

import pytest

from engine.eta import Eta


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_eta_counts_reward_phases_still_scheduled():
    c = Clock()
    eta = Eta(c)
    eta.plan(100, [20, 40])  # a pgg run: a first reward training, then retrains after steps 20 and 40
    eta.begin("reward", 0)
    assert eta.seconds_left() is None  # no rate yet
    c.t = 30.0
    eta.inside(10, 40)  # 10 of at most 40 reward steps in 30 s
    # unknown policy rate: no honest estimate yet
    assert eta.seconds_left() is None
    c.t = 120.0
    eta.inside(40, 40)
    eta.begin("policy", 0)  # the reward phase took 120 s
    c.t = 130.0
    eta.progress(10)  # 1 s per policy step
    # 90 policy steps at 1 s, two reward trainings at 120 s
    assert eta.seconds_left() == pytest.approx(90 + 2 * 120)
    c.t = 140.0
    eta.progress(20)  # the retraining after step 20 has not begun: still two to come
    assert eta.seconds_left() == pytest.approx(80 + 2 * 120)
    eta.begin("reward", 20)
    c.t = 200.0
    eta.inside(20, 40)  # 3 s per reward step now: 60 s left in this one, then one more like the mean
    assert eta.seconds_left() == pytest.approx(80 + 20 * 3 + 120)
    c.t = 260.0
    eta.inside(40, 40)
    eta.begin("policy", 20)  # mean reward training now (120 + 120) / 2
    c.t = 270.0
    eta.progress(30)
    assert eta.seconds_left() == pytest.approx(70 + 120)
    c.t = 330.0
    eta.progress(90)  # past the last retraining: policy steps only
    assert eta.seconds_left() == pytest.approx(10.0)  # 90 policy steps in 90 s of policy phases; no retraining left
    eta.progress(100)
    assert eta.seconds_left() == 0


def test_a_run_without_reward_phases_is_steps_times_rate():
    c = Clock()
    eta = Eta(c)
    eta.plan(50, [])
    eta.begin("policy", 10)  # resumed at step 10: timed from here
    c.t = 20.0
    eta.progress(20)
    assert eta.seconds_left() == pytest.approx(30 * 2.0)
