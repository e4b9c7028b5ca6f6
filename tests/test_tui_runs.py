"""Pilot tests of the runs screen (pgg_tui/screens/runs.py): the table, its columns and progress, the
top bar, and the actions on runs (cancel, retry, delete, clone, export, queue order)."""

from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Static

from engine.schema import Run
from engine.store import Store
from pgg_tui.app import PggApp
from support.pilot import settle, table_keys


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
        cols = [str(c.key.value) for c in table.columns.values()]
        rows = [dict(zip(cols, (str(c) for c in table.get_row(k)))) for k in table.rows]
        pgg = next(r for r in rows if r["method"] == "pgg" and r["dataset"] == "toy-sentiment")
        assert pgg["done"] == "3" and "92.40 ± 0.82 (3)" in pgg["result (mean ± std (n))"]


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


async def test_the_top_bar_says_whether_a_worker_serves_the_store(store):
    import os
    import socket

    from engine.schema import WorkerLease, now

    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(160, 30)) as pilot:
        await settle(pilot)
        assert "no worker (w)" in str(app.screen.query_one("#topbar").render())  # run 9 is queued
        with store.write() as s:
            s.add(
                WorkerLease(
                    name="w",
                    host=socket.gethostname(),
                    pid=os.getpid(),
                    heartbeat_at=now(),
                    started_at=now(),
                    slots='["cpu/0"]',
                )
            )
        for _ in range(50):  # the next poll reads the lease; give a busy machine a few seconds
            await pilot.pause(0.1)
            if f"worker pid {os.getpid()}" in str(app.screen.query_one("#topbar").render()):
                break
        assert f"worker pid {os.getpid()}" in str(app.screen.query_one("#topbar").render())


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


async def test_at_80_columns_the_header_keeps_paused_and_the_store_and_the_footer_keeps_quit(store):
    """Issue 24 item 7: at 80 columns the header lost "queue paused" and the store's path, and the footer hid
    `q quit`, though the README says the footer wraps rather than hides."""
    from pgg_tui.widgets.keybar import KeyBar

    store.set_queue_control(paused=True)
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        top = app.screen.query_one("#topbar", Static)
        shown = " ".join(str(line.text) for line in top.render_lines(top.region.reset_offset))
        assert "queue paused" in shown and "/experiments.db" in shown
        bar = app.screen.query_one(KeyBar)
        keys = " ".join(line.text for line in bar.render_lines(bar.region.reset_offset))
        assert "q quit" in keys and "^p palette" in keys
    from pgg_tui.core.present import short_location

    assert (
        short_location("/a/very/long/path/to/some/project/folder/experiments.db") == "…/project/folder/experiments.db"
    )
    assert short_location("postgresql://u@h/db") == "postgresql://u@h/db"


def _columns(app) -> list[tuple[str, int]]:
    table = app.screen.query_one(DataTable)
    return [(str(c.key.value), c.width) for c in table.columns.values()]


async def test_columns_stay_put_while_runs_train(store):
    """Issue 24 item 6: columns came and went with the polls (τ shown, gone, back) because their set followed
    the live cells. A τ arriving, a live score, a cancel: the same columns, the same widths."""
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        before = _columns(app)
        store.append(7, [dict(name="val/rouge1", phase="eval", step=12, value=44.1, time=0.0)], [], [], {"step": 12})
        store.append(7, [dict(name="reward/tau", phase="reward 1", step=12, value=0.5, time=0.0)], [], [], None)
        with store.write() as s:
            s.get(Run, 7).cancel_requested = True
        app.poll_now(force=True)
        await settle(pilot)
        assert _columns(app) == before
        table = app.screen.query_one(DataTable)
        cols = [c for c, _ in before]
        assert str(table.get_row("7")[cols.index("τ")]) == "+0.50"
        assert str(table.get_row("7")[cols.index("status")]) == "cancelling…"  # whole, in its fixed width


async def test_long_overrides_do_not_push_out_progress_result_and_eta(store):
    """Issue 24 item 6: one run with long overrides took the whole 80 columns for its method; now the cell
    is cut with … and every telling column stays."""
    from engine.config import to_json
    from engine.registry import plan_runs

    long = ["reward_lr=0.0001", "reward_retrain_every=40", "policy_lr=0.003", "agg_temp=0.5", "reward_k=8"]
    (rid,) = store.queue(plan_runs("prompt", "toy-sentiment", "pgg", "7", "0", "tiny", "", long), to_json)
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        cols = [c for c, _ in _columns(app)]
        assert {"id", "status", "method", "progress", "result", "τ", "eta", "seed"} <= set(cols)
        table = app.screen.query_one(DataTable)
        assert sum(c.get_render_width(table) for c in table.columns.values()) <= 80
        assert str(table.get_row(str(rid))[cols.index("method")]).endswith("…")


async def test_the_preview_pane_shows_the_selected_run_whole_at_160x48(store):
    """Issue 24 item 6: the space under the table was empty at 160x48; the cell cuts long settings."""
    from engine.config import to_json
    from engine.registry import plan_runs

    long = ["reward_lr=0.0001", "reward_retrain_every=40", "policy_lr=0.003", "agg_temp=0.5", "reward_k=8"]
    (rid,) = store.queue(plan_runs("prompt", "toy-sentiment", "pgg", "7", "0", "tiny", "", long), to_json)
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(160, 48)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=table.get_row_index(str(rid)))
        await settle(pilot)
        pane = app.screen.query_one("#preview", Static)
        text = str(pane.render())
        assert pane.display and f"run {rid} queued" in text and " ".join(sorted(long)) in text.replace("\n", " ")
        table.move_cursor(row=table.get_row_index("8"))  # the failed run: its reason
        await settle(pilot)
        assert "CUDA out of memory" in str(pane.render())
    small = PggApp(store, poll=0.2)
    async with small.run_test(size=(80, 24)) as pilot:  # no room for it: the table keeps the rows
        await settle(pilot)
        assert not small.screen.query_one("#preview", Static).display


async def test_a_running_runs_cpu_and_memory_show_in_the_table_and_its_header(store):
    """Issue 24, resources per run: the engine's last reading of a run's process (engine.resources)."""
    store.append(7, [], [], [], {"resources": '{"rss_gb": 1.234, "cpu": 97.5}'})
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(200, 48)) as pilot:
        await settle(pilot)
        cols = [c for c, _ in _columns(app)]
        assert str(app.screen.query_one(DataTable).get_row("7")[cols.index("use")]) == "98% 1.2G"
        assert "load 0." in str(app.screen.query_one("#topbar").render()) or "load " in str(
            app.screen.query_one("#topbar").render()
        )
        app.open_run(7)
        await settle(pilot, 6)
        assert "CPU 98% of a core · memory 1.23 GB" in str(app.screen.query_one("#run-header").render())


async def test_a_live_summarization_run_shows_its_validation_rouge_not_the_summed_score(store):
    """Issue 24 item 16: `val 123.48` (R1 + 2·R2 + RLsum) read as a broken percentage."""
    rows = [
        dict(name=n, phase="eval", step=12, value=v, time=0.0) for n, v in (("val/score", 123.48), ("val/rouge1", 44.1))
    ]
    store.append(7, rows, [], [], {"step": 12})
    app = PggApp(store, poll=0.2)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        cols = [c for c, _ in _columns(app)]
        assert str(app.screen.query_one(DataTable).get_row("7")[cols.index("result")]) == "vR-1 44.10"
