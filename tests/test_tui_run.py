"""Pilot tests of the run screen (pgg_tui/screens/run.py): header, plots, timeline, log, config, results."""

import math
import re
from dataclasses import dataclass

import pytest
from textual.widgets import Log, Static, TabbedContent

from pgg_tui.app import PggApp
from pgg_tui.core.smoothing import ema
from pgg_tui.widgets.keybar import KeyBar
from support import seed_store
from support.pilot import settle


@dataclass
class Drawn:
    xs: list[float]
    ys: list[float]
    style: str  # "dim" for the faint points as recorded behind a smoothed line
    joined: bool  # a line (plot) or points (scatter)


def drawn(plot) -> list[Drawn]:
    """What plotext was handed to draw, signal by signal, in order."""
    m = plot.plt.monitor
    return [Drawn(list(x), list(y), st[0] if st else "", bool(j)) for x, y, st, j in zip(m.x, m.y, m.style, m.lines)]


async def open_run(pilot, run_id: int = 1):
    await settle(pilot)
    pilot.app.open_run(run_id)
    await settle(pilot, 5)
    return pilot.app.screen


async def test_run_view_plots_timeline_log_results(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        app.open_run(1)
        await settle(pilot, 5)
        screen = app.screen
        assert "run 1 · done" in str(screen.query_one("#run-header", Static).render())
        assert len(screen.detail.metrics["policy/loss"]) == 60
        assert {p for p, _, _ in screen.detail.metrics["reward/loss"]} == {"reward 1", "reward 2"}
        for key, tab in (("2", "timeline"), ("3", "log"), ("4", "config"), ("5", "results")):
            await pilot.press(key)
            await settle(pilot)
            assert screen.query_one(TabbedContent).active == tab
        assert screen.query_one(Log).line_count >= 3
        assert "test/accuracy" in str(screen.query_one("#results-body", Static).render())
        assert "reward 2" in str(screen.query_one("#timeline-body", Static).render())
        app.open_run(8)
        await settle(pilot, 5)
        await pilot.press("5")
        await settle(pilot)
        assert "CUDA out of memory" in str(app.screen.query_one("#results-body", Static).render())


async def test_a_failed_run_opens_on_its_reason(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.open_run(8)
        await settle(pilot, 5)
        assert app.screen.query_one(TabbedContent).active == "results"
        assert "failed: RuntimeError: CUDA out of memory" in str(app.screen.query_one("#run-header").render())


async def test_the_reward_plot_keeps_its_legend_readable(store):
    """Five reward phases gave a legend that covered the data, with colours repeating (reward 3 = reward 5)."""
    rows = [
        dict(step=s, phase=f"reward {k}", name=name, value=4.0 - 0.1 * s - 0.2 * k)
        for k in range(1, 6)
        for s in range(1, 6)
        for name in ("reward/loss", "reward/val_loss")
    ]
    store.append(7, rows, [], [], None)
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        app.open_run(7)
        await settle(pilot, 5)
        drawn = app.screen.query_one("#plot-reward").plt.build()
        assert "last 3 of 5 phases" in drawn and "reward 5" in drawn and "reward 1" not in drawn
        assert "step" in drawn  # the x axis says what it counts


async def test_run_header_shows_grounding_against_people(store):
    store.append(
        7,
        [
            dict(step=0, phase="reward 1", name="reward/tau", value=0.2, time=seed_store.T0),
            dict(step=0, phase="reward 1", name="reward/human_tau", value=0.6, time=seed_store.T0),
        ],
        [],
        [],
        None,
    )
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        app.open_run(7)
        await settle(pilot, 6)
        header = str(app.screen.query_one("#run-header", Static).render())
        assert "τ +0.20" in header and "τ people +0.60" in header


async def test_run_header_says_na_when_the_last_reward_phase_had_nothing_to_rank(store):
    """The header showed the phase before's tau as the last one."""
    store.append(
        7,
        [
            dict(step=0, phase="reward 1", name="reward/chance_loss", value=4.787, time=seed_store.T0),
            dict(step=0, phase="reward 1", name="reward/tau", value=0.2, time=seed_store.T0),
            dict(step=20, phase="reward 2", name="reward/chance_loss", value=4.787, time=seed_store.T0),
        ],
        [],
        [],
        None,
    )
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        app.open_run(7)
        await settle(pilot, 6)
        header = str(app.screen.query_one("#run-header", Static).render())
        assert "τ n/a" in header and "+0.20" not in header


async def test_brackets_smooth_the_plots_with_the_ema_over_the_points_as_recorded(store):
    """] steps the EMA weight up (0 → 0.6 → 0.8 → 0.9), [ down; the points as recorded stay behind, dim."""
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_run(pilot)
        recorded = [v for _, _, v in screen.detail.metrics["policy/loss"]]
        await pilot.press("]", "]", "]")
        await settle(pilot)
        plot = screen.query_one("#plot-policy")
        raw_loss, raw_entropy, loss, entropy = drawn(plot)
        assert raw_loss.ys == recorded and raw_loss.style == "dim" and not raw_loss.joined
        assert raw_entropy.style == "dim" and loss.style != "dim" and loss.joined
        assert loss.ys == pytest.approx(ema(recorded, 0.9))
        y1, y2 = recorded[:2]  # by hand: debiased, the first point is itself
        assert loss.ys[:2] == pytest.approx([y1, (0.9 * 0.1 * y1 + 0.1 * y2) / (1 - 0.9**2)])
        assert "step · EMA 0.9" in plot.plt.build()
        await pilot.press("[", "[", "[", "[")  # past the end: stays at 0
        await settle(pilot)
        assert screen.smoothing == 0.0 and [d.ys for d in drawn(plot)][0] == recorded
        assert not any(d.style == "dim" for d in drawn(plot)) and "EMA" not in plot.plt.build()


async def test_log_y_where_every_value_is_positive_and_a_note_where_one_is_not(store):
    store.append(1, [dict(step=61, phase="policy", name="policy/loss", value=-0.2, time=seed_store.T0)], [], [], None)
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_run(pilot)
        await pilot.press("l")
        await settle(pilot)
        reward = screen.query_one("#plot-reward")
        first = [v for p, _, v in screen.detail.metrics["reward/loss"] if p == "reward 1"]
        assert drawn(reward)[0].ys == pytest.approx([math.log10(v) for v in first])
        ticks, labels = reward.plt.monitor.yticks[0], reward.plt.monitor.ylabels[0]
        assert [float(label) for label in labels] == pytest.approx([10**t for t in ticks], rel=1e-3)
        assert "step · log y" in reward.plt.build()
        assert reward.plt.build() == reward.plt.build()  # plotext's own log scale took the log of the logs
        policy = screen.query_one("#plot-policy")
        assert drawn(policy)[0].ys[-1] == -0.2 and "log y refused: values ≤ 0" in policy.plt.build()
        assert any("policy: values ≤ 0" in n.message for n in app._notifications)
        await pilot.press("l")
        await settle(pilot)
        assert drawn(reward)[0].ys == first and "log" not in reward.plt.build()
        app.open_run(2)  # no value <= 0: both axes of the policy plot on the log scale
        await settle(pilot, 5)
        await pilot.press("l")
        await settle(pilot)
        monitor = app.screen.query_one("#plot-policy").plt.monitor
        entropy = [v for _, _, v in app.screen.detail.metrics["policy/entropy"]]
        assert drawn(app.screen.query_one("#plot-policy"))[1].ys == pytest.approx([math.log10(v) for v in entropy])
        assert [float(label) for label in monitor.ylabels[1]] == pytest.approx(
            [10**t for t in monitor.yticks[1]], rel=1e-3
        )


async def test_x_switches_the_run_plots_to_minutes_since_the_run_started(store):
    t0 = seed_store.T0 + 100  # run 1's first phase starts here, a second before the run's started_at
    store.append(
        1,
        [dict(step=60 + k, phase="policy", name="policy/loss", value=0.5, time=t0 + 60 * k) for k in (1, 2, 3)],
        [],
        [],
        None,
    )
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_run(pilot)
        await pilot.press("2", "x")  # a plot key shows the plots
        await settle(pilot)
        assert screen.query_one(TabbedContent).active == "plots"
        plot = screen.query_one("#plot-policy")
        xs = drawn(plot)[0].xs
        assert xs[:60] == pytest.approx([100 / 60] * 60) and xs[60:] == pytest.approx([1.0, 2.0, 3.0])
        assert "minutes" in plot.plt.build()
        await pilot.press("x")
        await settle(pilot)
        assert drawn(plot)[0].xs == list(range(1, 64)) and "minutes" not in plot.plt.build()


async def test_the_timeline_has_a_wall_time_axis(store):
    """Run 1 ran 3m21s from its first phase; 116 cells of bar at 120 columns: a tick every 15 s."""
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_run(pilot)
        await pilot.press("2")
        await settle(pilot)
        title, bar, rule, labels = str(screen.query_one("#timeline-body", Static).render()).splitlines()[:4]
        assert bar.startswith("rewar▏policy") and len(rule) == 116 and set(rule) == {"┬", "─"}
        ticks = [(m.start(), m.group()) for m in re.finditer(r"\S+", labels)]
        assert [t for _, t in ticks[:6]] == ["0", "15s", "30s", "45s", "1m", "1m15s"] and ticks[-1][1] == "3m15s"
        assert all(rule[col] == "┬" for col, _ in ticks[:-1])
        assert ticks[8] == (round(120 / 201 * 116), "2m")  # a tick sits where its time does on the bar


async def test_the_plot_keys_are_in_the_footer_at_80_columns(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_run(pilot)
        keys = str(screen.query_one(KeyBar).render())
        assert all(k in keys for k in ("x step / time", "[ ] smooth", "l log y", "q quit"))
        assert len(keys.splitlines()) == 2  # as before the keys: the plots keep their rows
