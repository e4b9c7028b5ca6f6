"""Driving pgg-tui under Textual's pilot: let the screen catch up, read the table, open the queue form."""

from textual.widgets import DataTable


async def settle(pilot, n=3):
    """`n` rounds of: a pause, then every background worker done; then one more pause."""
    for _ in range(n):
        await pilot.pause()
        await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def table_keys(app) -> list[str]:
    """The row keys of the screen's table, top to bottom."""
    table = app.screen.query_one(DataTable)
    return [str(k.value) for k in table.rows]


async def open_queue_form(pilot):
    """The queue form, opened with `n`, that will not start a worker."""
    await settle(pilot)
    await pilot.press("n")
    await settle(pilot)
    form = pilot.app.screen
    form.query_one("#start-worker").value = False
    return form
