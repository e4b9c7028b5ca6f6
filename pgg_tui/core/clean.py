"""`pgg clean`: runs that ended, out of the listing and into the trash, as `pueue clean` clears finished
tasks. Failed and cancelled runs by default, done ones only when asked (`--status done`); `--older-than 7d`
keeps the recent ones. Each goes to the trash (engine.trash) with every row it recorded, so `pgg restore`
brings it back. Torch- and Textual-free.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from engine.errors import ConfigError
from engine.lifecycle import FINISHED

if TYPE_CHECKING:  # the store's ORM loads when runs are cleaned, not with `pgg --help`
    from engine.store import Run, Store

CLEANED_BY_DEFAULT = ("failed", "cancelled")  # never done unless asked: results are what runs are for
CONFIRM_ABOVE = 20  # more runs than this are cleaned only after a yes (-y, or the question on a terminal)
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> float:
    """`90s`, `30m`, `12h`, `7d`, `2w` -> seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if m is None:
        raise ConfigError(f"bad age {text!r}: a number and a unit, s m h d or w (90s, 12h, 7d)")
    return float(m.group(1)) * UNITS[m.group(2)]


def cleanable(
    store: Store,
    statuses: Sequence[str] = CLEANED_BY_DEFAULT,
    older_than: float | None = None,
    task: str | None = None,
    sweep: str | None = None,
) -> list[Run]:
    """The runs `pgg clean` would move to the trash: ended in one of `statuses`, and with `older_than`
    (seconds) ended that long ago or longer; oldest first."""
    from pgg_tui.core.views import RunQuery, find_runs

    for s in statuses:
        if s not in FINISHED:
            raise ConfigError(
                f"clean takes runs that ended ({', '.join(FINISHED)}), not {s} ones; `pgg cancel` stops a run"
            )
    runs = find_runs(store, RunQuery(tuple(statuses or CLEANED_BY_DEFAULT), task, None, None, sweep))
    if older_than is None:
        return runs
    cut = time.time() - older_than
    return [r for r in runs if (r.finished_at or r.created_at) <= cut]


def id_ranges(ids: Sequence[int]) -> str:
    """`[3, 4, 5, 9, 11, 12]` -> `3-5 9 11-12`: ids as `pgg restore` and the other commands read them back."""
    out: list[str] = []
    for rid in sorted(set(ids)):
        if out and rid == int(out[-1].rpartition("-")[2]) + 1:
            out[-1] = f"{out[-1].partition('-')[0]}-{rid}"
        else:
            out.append(str(rid))
    return " ".join(out)
