"""Pilot tests: every screen and action of pgg-tui on a seeded store."""

import json
import sys
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Log, Static, TabbedContent

sys.path.insert(0, str(Path(__file__).parent))
import seed_store  # noqa: E402

from engine.store import Store  # noqa: E402
from pgg_tui.core import views as app_data  # noqa: E402
from pgg_tui.app import PggApp, RunCommands  # noqa: E402


@pytest.fixture
def store(db, monkeypatch):
    monkeypatch.setattr(app_data, "now", lambda: seed_store.T0 + 500)
    monkeypatch.setattr("pgg_tui.app.ensure_worker", lambda st, *args: "worker started (test)")
    monkeypatch.setattr("pgg_tui.screens.queue.ensure_worker", lambda st, *args: "worker started (test)")
    return seed_store.seed("experiments.db")


def table_keys(app) -> list[str]:
    table = app.screen.query_one(DataTable)
    return [str(k.value) for k in table.rows]


async def settle(pilot, n=3):
    for _ in range(n):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def open_queue_form(pilot):
    """The queue form, opened with `n`, that will not start a worker."""
    await settle(pilot)
    await pilot.press("n")
    await settle(pilot)
    form = pilot.app.screen
    form.query_one("#start-worker").value = False
    return form


async def test_runs_table_filter_sort_group(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        assert table_keys(app) == [str(i) for i in range(1, 10)]
        await pilot.press("slash")
        await pilot.press(*"rlprompt")
        await settle(pilot)
        assert table_keys(app) == ["4", "5"]
        await pilot.press("enter", "escape")
        await settle(pilot)
        assert len(table_keys(app)) == 9
        await pilot.press("o", "o")  # sort by score
        await settle(pilot)
        assert table_keys(app)[0] == "3"  # 93.1, the best
        await pilot.press("g")
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        rows = [[str(c) for c in table.get_row(k)] for k in table.rows]
        pgg = next(r for r in rows if r[2] == "pgg" and r[0] == "prompt")
        assert pgg[4] == "3" and "92.40 ± 0.82 (3)" in pgg[5]


async def test_cancel_retry_delete_clone_export(store, tmp_path):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index("9"))  # the queued run
        await pilot.press("c")
        await settle(pilot)
        assert store.get(9).status == "cancelled"
        table.move_cursor(row=table.get_row_index("8"))  # the failed run
        await pilot.press("r")
        await settle(pilot)
        assert store.get(10).parent_id == 8 and store.get(10).status == "queued"
        table.move_cursor(row=table.get_row_index("7"))  # running: delete is refused
        await pilot.press("x", "y")
        await settle(pilot)
        assert store.get(7).status == "running"
        table.move_cursor(row=table.get_row_index("4"))
        await pilot.press("x")
        await settle(pilot)
        await pilot.press("n")  # say no first
        await settle(pilot)
        assert 4 in [r.id for r in store.runs()]
        await pilot.press("x", "y")
        await settle(pilot)
        assert 4 not in [r.id for r in store.runs()]
        table.move_cursor(row=table.get_row_index("6"))
        await pilot.press("space")
        table.move_cursor(row=table.get_row_index("5"))
        await pilot.press("space", "e")
        await settle(pilot)
        exported = list(Path(".").glob("pgg-export-*.csv"))
        assert exported and len(exported[0].read_text().splitlines()) == 3  # header + the two selected
        table.move_cursor(row=table.get_row_index("6"))
        await pilot.press("k")  # clone with edits: the form opens prefilled
        await settle(pilot)
        assert app.screen.query_one("#overrides", Input).value == "agg=max"
        assert app.screen.query_one("#seeds", Input).value == "0"


async def test_queue_form_validates_as_you_type(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        form = await open_queue_form(pilot)
        seeds = form.query_one("#seeds", Input)
        seeds.value = "3-1"
        await settle(pilot)
        assert "bad seeds" in str(form.query_one("#verdict", Static).render())
        assert form.query_one("#queue").disabled
        seeds.value = "0-4"
        form.query_one("#overrides", Input).value = "agg=min top_k=32"
        await settle(pilot)
        assert "5 runs" in str(form.query_one("#verdict", Static).render())
        before = len(store.runs())
        await pilot.press("ctrl+s")
        await settle(pilot)
        runs = store.runs()
        assert len(runs) == before + 5
        assert json.loads(runs[-1].overrides) == {"agg": "min", "top_k": "32"}


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


async def test_samples_browser(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index("2"))
        await pilot.press("s")
        await settle(pilot, 5)
        screen = app.screen
        assert len(table_keys(app)) == 6
        steps = [str(app.screen.query_one(DataTable).get_cell(k, "step")) for k in table_keys(app)]
        assert steps == ["r0", "r10", "r20", "30", "40", "50"]  # reward and policy steps told apart
        view = lambda: str(screen.query_one("#token-view", Static).render())  # noqa: E731
        assert "token 1/5 'Rated'" in view()
        await pilot.press("right", "right")
        assert "token 3/5 'Score'" in view() and "reward 0.6000" in view()
        await pilot.press("down", "down", "down", "t")  # sort by true score: 10.0 first, and in view
        await settle(pilot)
        assert screen.shown[0].true_score == 10.0 and screen.current() is screen.shown[0]
        await pilot.press("k")  # kind: reward only
        await settle(pilot)
        assert {s.kind for s in screen.shown} == {"reward"} and len(screen.shown) == 3
        await pilot.press("slash", *"20", "enter")
        await settle(pilot)
        assert [s.step for s in screen.shown] == [20]
        await pilot.press("escape")
        await settle(pilot)
        assert len(screen.shown) == 3
        await pilot.press("k", "k", "k", "k", "k")  # kind back to all
        await pilot.press("slash", *"policy", "enter")
        await settle(pilot)
        assert {s.phase for s in screen.shown} == {"policy"} and len(screen.shown) == 3
        await pilot.press("escape")
        await settle(pilot)
        await pilot.press("f")
        await settle(pilot)
        assert screen.view.follow == "toy-sentiment"


async def test_compare_table(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot, 4)
        table = app.screen.query_one(DataTable)
        rows = {str(table.get_row(k)[0]): table.get_row(k)[1] for k in table.rows}
        assert set(rows) == {"pgg · tiny", "pgg agg=max · tiny", "rlprompt · tiny"}
        assert rows["pgg · tiny"].plain == "92.4 (0.8) n=3" and rows["pgg · tiny"].style == "bold green"
        assert rows["rlprompt · tiny"].style == ""
        await pilot.press("v")  # each method's configuration chosen on validation: one row per method
        await settle(pilot, 4)
        rows = {str(table.get_row(k)[0]): table.get_row(k)[1] for k in table.rows}
        assert set(rows) == {"pgg", "rlprompt"}
        note = str(app.screen.query_one("#compare-note", Static).render())
        assert "pgg: " in note and "best of 2" in note and "unequal tuning" in note
        await pilot.press("v", "t")  # summarization: nothing done yet
        await settle(pilot, 4)
        assert "no done summarize runs" in str(app.screen.query_one("#compare-note", Static).render())


async def test_palette_offers_runs_and_failed_sweeps(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        provider = RunCommands(app.screen)
        hits = [h async for h in provider.search("open run 7")]
        assert any("open run 7" in str(h.match_display) for h in hits)
        hits = [h async for h in provider.search("requeue failed") if str(h.text).startswith("requeue")]
        assert len(hits) == 1 and "sweep" in str(hits[0].text)
        hits[0].command()
        await settle(pilot)
        assert store.get(10).parent_id == 8


async def test_welcome_and_demo_on_an_empty_store(db, monkeypatch):
    started = []
    monkeypatch.setattr("pgg_tui.app.ensure_worker", lambda st, *args: started.append(args) or "worker started (test)")
    monkeypatch.setattr("os.cpu_count", lambda: 6)
    store = Store.open("experiments.db")
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.screen.query_one("#welcome").display
        await pilot.press("D")
        await settle(pilot, 5)
        runs = store.runs()
        assert {(r.task, r.method) for r in runs} == {("prompt", "pgg"), ("prompt", "seq-reinforce"),
                                                      ("summarize", "pgg"), ("summarize", "mle")}
        assert all(r.preset == "tiny" for r in runs)
        assert started == [(["--cpu-slots", "6"],)]  # a slot per core: the demo's runs use one thread each
        assert not app.screen.query_one("#welcome").display
        assert len(table_keys(app)) == len(runs)
        await pilot.press("D")  # again, on a store that has runs: it asks first (Enter means no)
        await settle(pilot, 3)
        assert [str(b.label) for b in app.screen.query("Button")] == ["Yes (y)", "No (n)"]
        await pilot.press("enter")
        await settle(pilot, 3)
        assert len(store.runs()) == len(runs)
        await pilot.press("D", "y")
        await settle(pilot, 5)
        assert len(store.runs()) == 2 * len(runs)


async def test_columns_widen_when_a_queued_sweep_starts(db):
    from engine.config import to_json
    from engine.registry import plan_runs

    store = Store.open("experiments.db")
    ids = store.queue(plan_runs("prompt", "toy-sentiment", seeds="0-2"), to_json)  # all queued: narrow columns
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(130, 30)) as pilot:
        await settle(pilot)
        store.claim_next("w", None)
        store.append(ids[0], [], [], [], {"phase": "reward 1", "step": 3, "total_steps": 60})
        app.poll_now(force=True)
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        widths = {str(c.key.value): c.get_render_width(table) for c in table.columns.values()}
        assert widths["status"] >= len("running") + 2 and widths["phase"] >= len("reward 1") + 2


async def test_clone_keeps_the_method_and_preset_of_the_run(store):
    """`k` on an rlprompt run opened a form saying pgg / tiny: cloning queued another method."""
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index("4"))  # rlprompt, preset paper in the seeded store
        await pilot.press("k")
        await settle(pilot)
        run = store.get(4)
        form = app.screen
        assert form.query_one("#method").value == "rlprompt" == run.method
        assert form.query_one("#preset").value == run.preset
        assert [s.method for s in form.specs] == ["rlprompt"]


async def test_after_a_delete_the_cursor_stays_where_the_deleted_row_was(store):
    """It jumped to row 1, so a second `x y` deleted a run the user never looked at (issue 24)."""
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index("4"))
        at = table.cursor_row
        await pilot.press("x", "y")
        await settle(pilot)
        assert 4 not in [r.id for r in store.runs()]
        assert table.cursor_row == at and table_keys(app)[at] != "1"


async def test_a_running_run_is_refused_before_the_question(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index("7"))  # running
        await pilot.press("x")
        await settle(pilot)
        assert not list(app.screen.query("Button"))  # no dialog opened
        assert store.get(7).status == "running"


async def test_delete_dialog_labels_its_buttons_and_enter_means_no(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index("4"))
        await pilot.press("x")
        await settle(pilot)
        buttons = list(app.screen.query("Button"))
        assert [str(b.label) for b in buttons] == ["Yes (y)", "No (n)"]
        assert all(b.parent.region.contains_region(b.content_region) for b in buttons)  # labels were clipped: empty bars
        assert app.screen.focused is not None and app.screen.focused.id == "no"
        await pilot.press("enter")
        await settle(pilot)
        assert 4 in [r.id for r in store.runs()]


async def test_a_failing_background_task_says_so_once(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)

        def broken(run_id):
            raise RuntimeError("disk I/O error")

        store.get = broken
        for _ in range(2):
            await pilot.press("k")
            await settle(pilot)
        said = [n.message for n in app._notifications]
        assert said == ["opening the clone form failed: disk I/O error"]


async def test_queue_form_refuses_two_aggregations(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        form = await open_queue_form(pilot)
        form.query_one("#overrides", Input).value = "agg=min"
        form.query_one("#agg").value = "max"
        await settle(pilot)
        assert form.specs == [] and "disagree" in str(form.query_one("#verdict").render())
        form.query_one("#agg").value = "min"
        await settle(pilot)
        assert [s.overrides["agg"] for s in form.specs] == ["min"] * 3


async def test_the_top_bar_says_whether_a_worker_serves_the_store(store):
    import os
    import socket

    from engine.schema import WorkerLease, now

    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        assert "no worker (w)" in str(app.screen.query_one("#topbar").render())  # run 9 is queued
        with store.write() as s:
            s.add(WorkerLease(name="w", host=socket.gethostname(), pid=os.getpid(), heartbeat_at=now(),
                              started_at=now(), slots='["cpu/0"]'))
        for _ in range(50):  # the next poll reads the lease; give a busy machine a few seconds
            await pilot.pause(0.1)
            if f"worker pid {os.getpid()}" in str(app.screen.query_one("#topbar").render()):
                break
        assert f"worker pid {os.getpid()}" in str(app.screen.query_one("#topbar").render())


async def test_a_failed_run_and_a_finished_sweep_are_announced(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        bells = []
        app.bell = lambda: bells.append(1)
        store.end(7, "failed", error="Traceback ...\nRuntimeError: NaN in the reward loss")
        app.poll_now(True)  # each write is read at once, not at the next timed poll (late on a loaded machine)
        await settle(pilot, 6)
        said = [n.message for n in app._notifications]
        assert "run 7 failed: RuntimeError: NaN in the reward loss" in said and bells
        store.request_cancel([9])
        app.poll_now(True)
        await settle(pilot, 6)
        assert not any("sweep" in m for m in [n.message for n in app._notifications])  # a sweep of one: no news
        (a, b) = store.queue(store_specs(), to_json_)
        app.poll_now(True)
        await settle(pilot, 6)
        for rid in (a, b):
            store.claim_next("w", None)
            store.finish(rid, {"test/accuracy": 50.0})
        app.poll_now(True)
        await settle(pilot, 6)
        assert f"sweep {store.get(a).group_id} finished: 2 done" in [n.message for n in app._notifications]


def store_specs():
    from engine.registry import plan_runs

    return plan_runs("prompt", "toy-sentiment", "pgg", "0-1", "0", "tiny")


def to_json_(cfg):
    from engine.config import to_json

    return to_json(cfg)


async def test_a_failed_run_opens_on_its_reason(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        app.open_run(8)
        await settle(pilot, 5)
        assert app.screen.query_one(TabbedContent).active == "results"
        assert "failed: RuntimeError: CUDA out of memory" in str(app.screen.query_one("#run-header").render())


async def test_compare_and_groups_follow_the_selection_and_the_filter(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await pilot.press("slash", *"done rlprompt", "enter", "g")  # words of runs, not of groups
        await settle(pilot, 5)
        table = app.screen.query_one(DataTable)
        rows = [[str(c) for c in table.get_row(k)] for k in table.rows]
        assert [r[2] for r in rows] == ["rlprompt"]  # grouping with a filter showed an empty table
        await pilot.press("escape", "g")
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        for rid in ("1", "2", "6"):
            table.move_cursor(row=table.get_row_index(rid))
            await pilot.press("space")
        await pilot.press("m")
        await settle(pilot, 5)
        compare = app.screen.query_one(DataTable)
        cells = {str(compare.get_row(k)[0]): str(compare.get_row(k)[1]) for k in compare.rows}
        assert set(cells) == {"pgg · tiny", "pgg agg=max · tiny"}  # the chosen runs, not rlprompt's
        assert cells["pgg · tiny"].startswith("92.0 (0.8) n=2") and cells["pgg agg=max · tiny"] == "90.8 n=1"


@pytest.mark.parametrize("width", [80, 200])
async def test_columns_fit_the_width_most_telling_first(store, width):
    """At 80 columns the table showed `sco` and no ETA; every shown column is whole and fits."""
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(width, 24)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        cols = [str(c.key.value) for c in table.columns.values()]
        assert {"id", "status", "method", "result", "progress", "eta"} <= set(cols)
        assert sum(c.get_render_width(table) for c in table.columns.values()) <= width
        if width == 200:
            assert {"task", "dataset", "τ", "phase", "sweep"} <= set(cols)
        assert str(table.get_row("1")[cols.index("result")]) == "acc 91.50"  # the metric is named


async def test_a_cancel_shows_until_the_run_stops(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index("7"))  # running
        await pilot.press("c")
        await settle(pilot, 6)
        assert store.get(7).status == "running"
        assert str(app.screen.query_one(DataTable).get_cell("7", "status")) == "cancelling…"


async def test_progress_counts_a_reward_trainings_steps(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        store.append(7, [], [], [], {"phase": "reward 2", "phase_step": 37, "phase_total": 120})
        app.poll_now(True)  # not the next timed poll: on a loaded machine it came after the settle
        await settle(pilot, 6)
        cell = str(app.screen.query_one(DataTable).get_cell("7", "progress"))
        assert cell.endswith("R 37/120")  # was the policy's 10/24, standing still for minutes
        app.open_run(7)
        await settle(pilot, 5)
        assert "reward 2 37/120 · step 10/24" in str(app.screen.query_one("#run-header").render())


async def test_the_reward_plot_keeps_its_legend_readable(store):
    """Five reward phases gave a legend that covered the data, with colours repeating (reward 3 = reward 5)."""
    rows = [dict(step=s, phase=f"reward {k}", name=name, value=4.0 - 0.1 * s - 0.2 * k)
            for k in range(1, 6) for s in range(1, 6) for name in ("reward/loss", "reward/val_loss")]
    store.append(7, rows, [], [], None)
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        app.open_run(7)
        await settle(pilot, 5)
        drawn = app.screen.query_one("#plot-reward").plt.build()
        assert "last 3 of 5 phases" in drawn and "reward 5" in drawn and "reward 1" not in drawn
        assert "step" in drawn  # the x axis says what it counts


async def test_queue_form_shows_every_error_its_own_keys_and_where_focus_is(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        form = app.screen
        form.query_one("#dataset", Input).value = "imdb"
        form.query_one("#seeds", Input).value = "3-1"
        await settle(pilot)
        verdict = str(form.query_one("#verdict").render())
        assert "unknown dataset" in verdict and "bad seeds" in verdict  # both, not the first only
        keys = str(form.query_one("KeyBar").render())
        assert "Close" in keys and "Queue" in keys and "quit" not in keys and "Cancel" not in keys
        seeds, dataset = form.query_one("#seeds", Input), form.query_one("#dataset", Input)
        seeds.focus()
        await settle(pilot)
        assert seeds.styles.background != dataset.styles.background  # focus was invisible (234 vs 235)


async def test_queue_control_from_the_runs_table(store):
    """p pauses and resumes the queue (the top bar says so); + and - move queued runs, refused for others."""
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await pilot.press("p")
        await settle(pilot)
        assert store.queue_control().paused
        app.poll_now(True)
        await settle(pilot)
        assert "queue paused" in str(app.screen.query_one("#topbar", Static).render())
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=table_keys(app).index("9"))
        await pilot.press("plus", "plus")
        await settle(pilot)
        assert store.get(9).priority == 4  # seeded at 2
        await pilot.press("minus")
        await settle(pilot)
        assert store.get(9).priority == 3
        table.move_cursor(row=table_keys(app).index("8"))
        await pilot.press("plus")
        await settle(pilot)
        assert store.get(8).priority == 0  # failed: not in the queue, refused
        await pilot.press("p")
        await settle(pilot)
        assert not store.queue_control().paused


async def test_label_a_run_with_name_tags_and_notes(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=table_keys(app).index("4"))
        await pilot.press("a")
        await settle(pilot)
        form = app.screen
        assert form.query_one("#label-name", Input).has_focus
        await pilot.press(*"rl base")
        form.query_one("#label-tags", Input).value = "keep, rl"
        form.query_one("#label-notes").text = "the RLPrompt baseline\nseed 0"
        await pilot.press("ctrl+s")
        await settle(pilot)
        run = store.get(4)
        assert (run.name, json.loads(run.tags), run.notes) == ("rl base", ["keep", "rl"], "the RLPrompt baseline\nseed 0")
        app.poll_now(True)
        await settle(pilot)
        assert "rl base #keep #rl" in [str(c) for c in table.get_row("4")]  # the name column at this width
        await pilot.press("slash", *"#keep")
        await settle(pilot)
        assert table_keys(app) == ["4"]  # the filter finds tags
        await pilot.press("enter", "escape", "enter")
        await settle(pilot)
        header = str(app.screen.query_one("#run-header", Static).render())
        assert "rl base #keep #rl" in header and "notes: the RLPrompt baseline" in header


async def test_chart_of_one_metric_across_the_chosen_runs(store):
    """v charts the selection; m picks the metric, g folds seeds into mean ± std, x switches to wall time."""
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        for key in ("1", "2", "4"):
            table.move_cursor(row=table_keys(app).index(key))
            await pilot.press("space")
        await pilot.press("v")
        await settle(pilot, 6)
        chart = app.screen
        assert chart.ids == [1, 2, 4] and not chart.grouped
        header = lambda: str(chart.query_one("#chart-header", Static).render())  # noqa: E731
        assert header().startswith("dev/score 1/") and "3 runs · each run" in header()
        await pilot.press("m")
        await settle(pilot)
        assert chart.metric == chart.metrics[1]
        await pilot.press("M", "g")
        await settle(pilot)
        assert chart.metric == "dev/score" and "mean ± std" in header()
        await pilot.press("x")
        await settle(pilot)
        assert "each run" in header() and "minutes since start" in header()  # seeds share no clock


async def test_diff_two_runs(store):
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        assert app.screen.id != "diff" and len(app.screen_stack) == 2  # nothing selected: a hint, no screen
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=table_keys(app).index("1"))
        await pilot.press("space")
        table.move_cursor(row=table_keys(app).index("6"))
        await pilot.press("d")
        await settle(pilot)
        diff = app.screen.query_one("#diff", DataTable)
        rows = [[str(c) for c in diff.get_row_at(i)] for i in range(diff.row_count)]
        assert ["config", "agg", "avg", "max"] in rows  # run 6 is pgg agg=max
        assert ["result", "test/accuracy", "91.5", "90.8"] in rows
        assert "1 setting differs" in str(app.screen.query_one("#diff-header", Static).render())


async def test_rank_through_the_app_and_the_waiting_run_goes_on(store, monkeypatch):
    """R on a run waiting for rankings opens its requests; number keys order, Enter records; the run's
    reward phase, waiting in its own thread, continues once both are ranked; s skips; Esc puts back."""
    import threading

    from engine import rankings
    from engine.preferences import Pool
    from engine.registry import plan_runs
    from engine.report import StoreReporter

    monkeypatch.setattr("engine.preferences.POLL", 0.05)
    ids = seed_store.seed_rankings(store, 7, 3)
    cfg = plan_runs("summarize", "toy-news", "pgg", preset="tiny", overrides=["preference=human", "rank_lists=3",
                                                                              "rank_heldout=0"])[0].config
    reporter = StoreReporter(store, 7, interval=0.1)
    pool = Pool(cfg, reporter, "summarize")
    waiting = threading.Thread(target=pool.collect, args=(1, None, None), daemon=True)  # asked already: resumes
    waiting.start()
    app = PggApp(store, poll=0.2, annotator="ana")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=table_keys(app).index("7"))
        assert "rank 3 (R)" in str(table.get_row("7"))
        await pilot.press("R")
        await settle(pilot)
        header = str(app.screen.query_one("#rank-header", Static).render())
        assert f"request {ids[0]}" in header and "as ana" in header and "3 left" in header
        await pilot.press("2", "enter")  # the second summary best, then the first, then the third
        await settle(pilot)
        assert rankings.answers(store, ids) == {ids[0]: [1, 0, 2]}
        assert f"request {ids[1]}" in str(app.screen.query_one("#rank-header", Static).render())
        await pilot.press("s")  # skipped: not offered to ana again; nothing else is left for her
        await settle(pilot)
        assert f"request {ids[2]}" in str(app.screen.query_one("#rank-header", Static).render())
        await pilot.press("down", "shift+down", "enter")  # moved the 2nd candidate down: 0, 2, 1
        await settle(pilot)
        assert rankings.answers(store, ids)[ids[2]] == [0, 2, 1]
        assert "nothing to rank" in str(app.screen.query_one("#rank-header", Static).render())
        await pilot.press("escape")
        await settle(pilot)
    assert waiting.is_alive()  # one request (skipped by ana) is still unranked
    r = rankings.claim(store, "bob")
    assert r.id == ids[1]
    rankings.submit(store, r.id, [2, 1, 0], "bob")
    waiting.join(10)
    reporter.close()
    assert not waiting.is_alive() and store.get(7).waiting_for == 0
    assert sorted((tuple(x.order), x.annotator) for x in pool.lists) == [((0, 2, 1), "ana"), ((1, 0, 2), "ana"),
                                                                         ((2, 1, 0), "bob")]


async def test_a_number_key_above_k_says_why_it_did_nothing(store):
    seed_store.seed_rankings(store, 7, 3)
    app = PggApp(store, poll=0.2, annotator="ana")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("R")
        await settle(pilot)
        await pilot.press("7", "1", "1")
        await settle(pilot)
        said = [n.message for n in app._notifications]
        assert any("there is no candidate 7: this list has 3 (1-3)" in m for m in said)
        assert any("candidate 1 is placed already" in m for m in said)


async def test_run_header_shows_grounding_against_people(store):
    store.append(7, [dict(step=0, phase="reward 1", name="reward/tau", value=0.2, time=seed_store.T0),
                     dict(step=0, phase="reward 1", name="reward/human_tau", value=0.6, time=seed_store.T0)],
                 [], [], None)
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        app.open_run(7)
        await settle(pilot, 6)
        header = str(app.screen.query_one("#run-header", Static).render())
        assert "τ +0.20" in header and "τ people +0.60" in header


async def test_run_header_says_na_when_the_last_reward_phase_had_nothing_to_rank(store):
    """The header showed the phase before's tau as the last one."""
    store.append(7, [dict(step=0, phase="reward 1", name="reward/chance_loss", value=4.787, time=seed_store.T0),
                     dict(step=0, phase="reward 1", name="reward/tau", value=0.2, time=seed_store.T0),
                     dict(step=20, phase="reward 2", name="reward/chance_loss", value=4.787, time=seed_store.T0)],
                 [], [], None)
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(160, 40)) as pilot:
        await settle(pilot)
        app.open_run(7)
        await settle(pilot, 6)
        header = str(app.screen.query_one("#run-header", Static).render())
        assert "τ n/a" in header and "+0.20" not in header
