"""What a person can do to runs, with the one line each front end shows for it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

from engine.errors import ConfigError
from engine.registry import RunSpec, plan_runs
from engine.store import Run, Store
from engine.sweep import Sweep
from pgg_tui.core.present import override_args

DEMO = [  # (task, dataset, method, seeds, settings): tiny models, CPU, a few minutes in all
    ("prompt", "toy-sentiment", "pgg", "0-2", []),
    ("prompt", "toy-sentiment", "seq-reinforce", "0-1", []),
    # every one of the 16 test articles (the preset scores 8, on which pgg and mle wrote the same headlines)
    ("summarize", "toy-news", "pgg", "0-1", ["max_test_examples=0"]),
    ("summarize", "toy-news", "mle", "0", ["max_test_examples=0"]),
]


def demo_worker_args() -> list[str]:
    """The demo's tiny runs use one thread each; one slot per core runs the sweep in minutes, not a quarter
    of an hour (a box with GPUs gives them GPU slots instead)."""
    return ["--cpu-slots", str(max(1, os.cpu_count() or 1))]


def queue_runs(
    store: Store,
    specs: Sequence[RunSpec],
    name: str = "",
    tags: Sequence[str] = (),
    priority: int = 0,
    sweep: Sweep | None = None,
    after: Sequence[int] = (),
) -> list[int]:
    """Queue the runs as one group; a sweep's grid is recorded with it (`pgg compare` reads it). Tags are
    read as typed (pgg_tui.core.tags: `#keep, rl` is keep and rl). `after`: runs they wait for (Store.queue)."""
    from pgg_tui.core.tags import parse_tags

    grid = None if sweep is None else (sweep.name, sweep.to_json())
    return store.queue(specs, name=name, tags=parse_tags(tags), priority=priority, grid=grid, after=after)


def demo_size() -> int:
    """How many runs the demo sweep queues."""
    return sum(len(plan_runs(task, dataset, method, seeds, "0", "tiny")) for task, dataset, method, seeds, _ in DEMO)


def queue_demo(store: Store) -> list[int]:
    specs = [
        spec
        for task, dataset, method, seeds, sets in DEMO
        for spec in plan_runs(task, dataset, method, seeds, "0", "tiny", overrides=sets)
    ]
    return queue_runs(store, specs)


def cancel_runs(store: Store, ids: Sequence[int]) -> list[str]:
    return store.request_cancel(ids)


def retry_runs(store: Store, ids: Sequence[int]) -> list[str]:
    new = store.retry(ids)
    return [f"run {old}: retried as run {n}" for old, n in zip(ids, new)]


def delete_runs(store: Store, ids: Sequence[int], keep: bool = True) -> list[str]:
    """Delete runs; with `keep` (the default) their rows go to the trash first (engine.trash), so a delete
    can be undone (`pgg restore`, the app's u)."""
    from engine import trash

    kept = trash.save(store, ids) if keep else []
    try:
        store.delete(ids)
    except BaseException:
        for path in kept:  # refused (a running run): nothing was deleted, so nothing is in the trash
            path.unlink(missing_ok=True)
        raise
    said = f"deleted {len(ids)} run{'s' * (len(ids) != 1)}: {', '.join(map(str, ids))}"
    return [
        said
        + (
            f" (in the trash: `pgg restore {' '.join(map(str, ids))}` brings {'them' if len(ids) > 1 else 'it'} back)"
            if keep
            else ""
        )
    ]


def restore_runs(store: Store, ids: Sequence[int]) -> list[str]:
    """Put trashed runs back (engine.trash.restore); a run whose id was taken since comes back under a new one."""
    from engine import trash

    lines = []
    for rid in ids:
        new = trash.restore(store, rid)
        lines.append(f"run {rid}: restored" + (f" as run {new} (its id was taken since)" if new != rid else ""))
    return lines


def needs_requeue(runs: Iterable[Any]) -> dict[str, list[int]]:
    """Per sweep, its failed or lost runs that no attempt retries yet (a cancelled run was meant to stop).

    `runs`: anything with id, status, group_id and parent_id (store rows or the app's RunRows)."""
    runs = list(runs)
    retried = {r.parent_id for r in runs}
    out: dict[str, list[int]] = {}
    for r in runs:
        if r.status in ("failed", "lost") and r.id not in retried:
            out.setdefault(r.group_id, []).append(r.id)
    return out


def clone_fields(run: Run) -> dict[str, Any]:
    """A run's queue form, filled in as it was queued (method, preset, overrides and all)."""
    cfg = json.loads(run.config)
    return dict(
        task=run.task,
        dataset=run.dataset,
        method=run.method,
        seeds=str(run.seed),
        dataset_seeds=str(run.dataset_seed),
        preset=run.preset,
        data_dir=cfg.get("data_dir", ""),
        overrides=" ".join(override_args(run.overrides)),
        name=run.name,
        tags=" ".join(json.loads(run.tags)),
    )


def toggle_pause(store: Store) -> list[str]:
    control = store.set_queue_control(paused=not store.queue_control().paused)
    return [
        "queue paused: running runs go on, queued ones wait (p resumes)"
        if control.paused
        else "queue resumed: workers start queued runs again"
    ]


def bump_priority(store: Store, ids: Sequence[int], by: int) -> list[str]:
    """Move queued runs up (by > 0) or down the queue, each from its own priority."""
    runs = store.runs(ids=list(ids))
    moving = [r for r in runs if r.status != "queued"]
    if moving:
        raise ConfigError(f"run {moving[0].id} is {moving[0].status}; priority orders only queued runs")
    lines = []
    for level in sorted({r.priority for r in runs}):
        lines += store.set_priority([r.id for r in runs if r.priority == level and r.id is not None], level + by)
    return lines
