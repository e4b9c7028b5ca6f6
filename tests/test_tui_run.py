"""Pilot tests of the run screen (pgg_tui/screens/run.py): header, plots, timeline, log, config, results."""

from textual.widgets import Log, Static, TabbedContent

from pgg_tui.app import PggApp
from support import seed_store
from support.pilot import settle


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
