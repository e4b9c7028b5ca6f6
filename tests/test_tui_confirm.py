"""Pilot tests of the yes/no dialog (pgg_tui/screens/confirm.py)."""

from textual.widgets import DataTable

from pgg_tui.app import PggApp
from support.pilot import settle


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
        assert all(
            b.parent.region.contains_region(b.content_region) for b in buttons
        )  # labels were clipped: empty bars
        assert app.screen.focused is not None and app.screen.focused.id == "no"
        await pilot.press("enter")
        await settle(pilot)
        assert 4 in [r.id for r in store.runs()]
