"""A DataTable's cursor by row key: read it, and put it back after a refresh rebuilt the rows."""

from __future__ import annotations

from typing import Any

from textual.widgets import DataTable
from textual.widgets.data_table import CellDoesNotExist, RowDoesNotExist


def cursor_key(table: DataTable[Any]) -> str | None:
    """The key of the row under the cursor; None on an empty table."""
    if table.row_count == 0:
        return None
    try:
        return str(table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value)
    except CellDoesNotExist:
        return None


def move_to_key(table: DataTable[Any], key: str) -> bool:
    """Put the cursor on the row with this key; False (cursor untouched) when no row has it any more."""
    try:
        table.move_cursor(row=table.get_row_index(key))
    except RowDoesNotExist:
        return False
    return True
