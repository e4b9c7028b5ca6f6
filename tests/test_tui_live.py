"""The app open while the scheduler runs a tiny real training: the table, the plots and the samples update."""

import os
import signal
import subprocess
import sys
import time

import pytest
from textual.widgets import DataTable

from engine.config import to_json
from engine.registry import plan_runs
from engine.store import Store
from pgg_tui.app import PggApp

pytestmark = pytest.mark.slow  # end-to-end runs of the tiny presets


async def wait_until(pilot, pred, timeout=120.0, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        await pilot.pause(0.2)
        if pred():
            return
    raise AssertionError(f"timed out waiting for {what}")


async def test_live_run_updates_the_app(db):
    store = Store.open("experiments.db")
    (rid,) = store.queue(
        plan_runs(
            "prompt",
            "toy-sentiment",
            "pgg",
            preset="tiny",
            overrides=[
                "max_steps=120",
                "eval_every=20",
                "reward_retrain_every=40",
                "reward_max_steps=20",
                "reward_epochs=2",
            ],
        ),
        to_json,
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "pgg_tui", "worker", "--db", "experiments.db", "--poll", "0.2", "--exit-when-idle"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    app = PggApp(store, poll=0.3)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await wait_until(
                pilot, lambda: any(r.status == "running" and r.step > 0 for r in app.rows), what="running row"
            )
            table = app.screen.query_one(DataTable)
            assert "running" in str(table.get_cell(str(rid), "status"))
            app.open_run(rid)
            screen = app.screen
            await wait_until(
                pilot, lambda: len(screen.detail.metrics.get("policy/loss", [])) > 5, what="policy loss rows"
            )
            first = len(screen.detail.metrics["policy/loss"])
            await wait_until(pilot, lambda: len(screen.detail.metrics["policy/loss"]) > first, what="more rows")
            drawn = screen.query_one("#plot-policy").plt.build()  # the canvas as the terminal shows it
            assert "policy/loss" in drawn and "┤" in drawn  # y ticks: drawn only around data
            await pilot.press("s")
            await wait_until(pilot, lambda: len(getattr(app.screen, "samples", [])) > 0, what="samples")
            await pilot.press("escape", "escape")
            await wait_until(
                pilot, lambda: any(r.id == rid and r.status == "done" for r in app.rows), timeout=180, what="run done"
            )
            assert worker.wait(timeout=60) == 0
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)
    assert store.get(rid).status == "done"
