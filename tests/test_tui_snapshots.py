"""Snapshots of every screen at 80x24 and 160x48 (pytest-textual-snapshot; `--snapshot-update` to accept)."""

import pytest

from engine.store import Store
from pgg_tui.app import PggApp
from support import seed_store
from support.pilot import settle as pilot_settle

SIZES = [(80, 24), (160, 48)]


@pytest.fixture(autouse=True)
def fixed_location(monkeypatch):
    """The top bar shows the store's absolute path and the machine's load; a snapshot needs ones that do not
    change per run."""
    import os

    monkeypatch.setattr(Store, "location", property(lambda self: "~/exp/experiments.db"))
    monkeypatch.setattr(os, "getloadavg", lambda: (0.5, 0.5, 0.5))
    monkeypatch.setattr(os, "cpu_count", lambda: 2)


async def settle(pilot, n=4):
    """support.pilot.settle, a round longer by default: a snapshot must not catch a screen mid-update."""
    await pilot_settle(pilot, n)


def screens():
    async def runs(pilot):
        await settle(pilot)

    async def grouped(pilot):
        await settle(pilot)
        await pilot.press("g")
        await settle(pilot)

    async def run_view(pilot):
        await settle(pilot)
        pilot.app.open_run(1)
        await settle(pilot, 6)

    async def samples(pilot):
        await settle(pilot)
        await pilot.press("s")
        await settle(pilot, 6)
        await pilot.press("right", "right")
        await settle(pilot)

    async def compare(pilot):
        await settle(pilot)
        await pilot.press("m")
        await settle(pilot, 6)

    async def queue(pilot):
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)

    async def chart(pilot):
        await settle(pilot)
        await pilot.press("v")
        await settle(pilot, 6)

    async def label(pilot):
        await settle(pilot)
        await pilot.press("a")
        await settle(pilot)

    async def diff(pilot):
        await settle(pilot)
        await pilot.press("space", "down", "down", "down", "down", "down", "d")
        await settle(pilot, 6)

    return {
        "diff": diff,
        "runs": runs,
        "grouped": grouped,
        "run": run_view,
        "samples": samples,
        "compare": compare,
        "queue": queue,
        "chart": chart,
        "label": label,
    }


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", list(screens()))
def test_screen(snap_compare, seeded, name, size):
    assert snap_compare(PggApp(seeded, poll=3600), run_before=screens()[name], terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_welcome(snap_compare, db, size):
    async def wait(pilot):
        await settle(pilot)

    assert snap_compare(PggApp(Store.open("experiments.db"), poll=3600), run_before=wait, terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_rank_screen(snap_compare, seeded, size):
    """A run waiting for rankings: the runs table says so; R opens its first request, 2 places the second
    summary first."""
    seed_store.seed_rankings(seeded)

    async def rank(pilot):
        await settle(pilot)
        pilot.app.action_rank(7)
        await settle(pilot)
        await pilot.press("2")
        await settle(pilot)

    assert snap_compare(PggApp(seeded, poll=3600, annotator="ana"), run_before=rank, terminal_size=size)
