"""Rankings by people: the requests a run waits on, who is ranking what, and ranking files.

A run with `preference=human` writes one request per list of K candidates (`ask`) and polls for the
answers (`answers`), through its `RunRankings`. Rankers claim one request at a time (`claim`): a
conditional UPDATE decides, as `Store.claim_next` does for runs, so two people ranking the same run from
their own SSH sessions never get the same request. A claim left for `STALE_CLAIM` seconds (a closed
terminal) returns to the pool.

A ranking file is JSON Lines, one ranked list per line:

    {"context": "...", "candidates": ["...", "..."], "order": [1, 0], "annotator": "ana", "time": 1.7e9,
     "task": "summarize", "run": 12}

`order` lists candidate indices, best first; the other keys are optional on import. `pgg rankings export`
writes this format and `import` reads it, so a file round-trips. Stdlib + the store only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import CursorResult
from sqlmodel import Session, col, select

from engine.errors import ConfigError
from engine.schema import Ranking, content_hash, now, table_of
from engine.store import Store

STALE_CLAIM = 120.0  # seconds: a claim older than this is anyone's again (the Rank screen renews its own every 2 s)
PENDING = ("open", "claimed")


@dataclass
class Request:
    """What a run asks a person to order."""

    context: str
    candidates: list[dict[str, Any]]  # {"text", "tokens", "rewards"}; the prompt task's also "auto" (shown on v)
    payload: dict[str, Any]
    heldout: bool = False


# ---------------------------------------------------------------------------------------------------
# the run's side


def ask(store: Store, run_id: int, round_: int, task: str, requests: Sequence[Request]) -> list[int]:
    """Write the requests of one reward training and return their ids. A run resumed inside that training
    (preempted, requeued) finds the ones it wrote before and gets those back: people's work is not asked twice."""
    with store.write() as s:
        old = s.exec(
            select(Ranking.id)
            .where(col(Ranking.run_id) == run_id, col(Ranking.round) == round_)
            .order_by(col(Ranking.id))
        ).all()
        if old:
            s.execute(
                sa.update(Ranking)
                .where(col(Ranking.id).in_(old), col(Ranking.status) == "expired")
                .values(status="open", claimed_by=None, claimed_at=None)
            )
            return [int(i) for i in old if i is not None]
        rows = [
            Ranking(
                run_id=run_id,
                round=round_,
                task=task,
                context=r.context,
                candidates=json.dumps(r.candidates),
                payload=json.dumps(r.payload),
                heldout=r.heldout,
            )
            for r in requests
        ]
        s.add_all(rows)
        s.flush()
        return [int(r.id) for r in rows if r.id is not None]


def answers(store: Store, ids: Sequence[int]) -> dict[int, list[int]]:
    """Request id -> its order (best first), for the requests already ranked."""
    with store.read() as s:
        rows = s.exec(
            select(Ranking.id, Ranking.best_first).where(col(Ranking.id).in_(list(ids)), col(Ranking.status) == "done")
        ).all()
    return {int(i): json.loads(o) for i, o in rows if i is not None and o}


def asked(store: Store, run_id: int, round_: int) -> list[int]:
    """The requests a run wrote at reward training `round_` (none unless it is resuming inside it)."""
    with store.read() as s:
        return [
            int(i)
            for i in s.exec(
                select(Ranking.id)
                .where(col(Ranking.run_id) == run_id, col(Ranking.round) == round_)
                .order_by(col(Ranking.id))
            ).all()
            if i is not None
        ]


def requested(store: Store, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """Request id -> the list as the engine reads it (see `as_list`), answered or not."""
    with store.read() as s:
        rows = s.exec(select(Ranking).where(col(Ranking.id).in_(list(ids)))).all()
    return {int(r.id): as_list(r) for r in rows if r.id is not None}


def answered(store: Store, run_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Every answered request of these runs (a run and the attempts it retries), oldest first."""
    with store.read() as s:
        rows = s.exec(
            select(Ranking)
            .where(col(Ranking.run_id).in_(list(run_ids)), col(Ranking.status) == "done")
            .order_by(col(Ranking.id))
        ).all()
    return [as_list(r) for r in rows]


def as_list(r: Ranking) -> dict[str, Any]:
    """The fields of engine.preferences.Ranked."""
    return dict(
        context=r.context,
        texts=[c["text"] for c in json.loads(r.candidates)],
        order=json.loads(r.best_first or "[]"),
        payload=json.loads(r.payload),
        heldout=r.heldout,
        annotator=r.annotator or "",
    )


def expire(store: Store, run_id: int, ids: Sequence[int] | None = None) -> int:
    """Withdraw a run's unanswered requests (it stopped waiting: timed out, cancelled, ended)."""
    with store.write() as s:
        q = sa.update(Ranking).where(col(Ranking.run_id) == run_id, col(Ranking.status).in_(PENDING))
        if ids is not None:
            q = q.where(col(Ranking.id).in_(list(ids)))
        res = s.execute(q.values(status="expired", claimed_by=None, claimed_at=None))
        return cast(CursorResult[Any], res).rowcount


class RunRankings:
    """One run's side of the rankings, bound to its store and id: what a run with preference=human asks
    people and reads back (engine.preferences.Pool). A reporter that records into a store carries one
    (`reporter.rankings`); one without a store has none."""

    def __init__(self, store: Store, run_id: int):
        self.store, self.run_id = store, run_id

    def asked(self, round_: int) -> list[int]:
        """Ids of the requests this run wrote at reward training `round_` (a resume finds them)."""
        return asked(self.store, self.run_id, round_)

    def ask(self, round_: int, task: str, requests: Sequence[Request]) -> list[int]:
        return ask(self.store, self.run_id, round_, task, requests)

    def answers(self, ids: Sequence[int]) -> dict[int, list[int]]:
        """Request id -> order (best first) for those ranked so far."""
        return answers(self.store, ids)

    def requested(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        return requested(self.store, ids)

    def answered(self) -> list[dict[str, Any]]:
        """Every list ranked for this run and the attempts it retries."""
        return answered(self.store, [r.id for r in self.store.lineage(self.run_id) if r.id is not None])

    def withdraw(self, ids: Sequence[int]) -> None:
        expire(self.store, self.run_id, ids)


# ---------------------------------------------------------------------------------------------------
# the ranker's side


def _next_for(s: Session, annotator: str, run_id: int | None, t: float, stale_after: float) -> Ranking | None:
    """The request `annotator` gets next: one they already hold, else the oldest open one (or one whose claim
    went stale) they have not skipped."""
    q = select(Ranking).where(col(Ranking.status).in_(PENDING)).order_by(col(Ranking.id))
    if run_id is not None:
        q = q.where(col(Ranking.run_id) == run_id)
    pick = None
    for r in s.exec(q).all():
        if r.status == "claimed" and r.claimed_by == annotator:
            return r
        if annotator in json.loads(r.skipped_by):
            continue
        if r.status == "open" or (r.claimed_at or 0) < t - stale_after:
            pick = pick or r
    return pick


def peek(store: Store, annotator: str, run_id: int | None = None, stale_after: float = STALE_CLAIM) -> Ranking | None:
    """The request `claim` would give `annotator`, left unclaimed: the Rank screen shows it and claims it on the
    ranker's first key, so a screen left open holds nothing."""
    annotator = clean_annotator(annotator)
    with store.read() as s:
        return _next_for(s, annotator, run_id, now(), stale_after)


def claim(
    store: Store,
    annotator: str,
    run_id: int | None = None,
    stale_after: float = STALE_CLAIM,
    request_id: int | None = None,
) -> Ranking | None:
    """Claim the next request for `annotator` (see `_next_for`), or with `request_id` that one only (None when
    someone else holds it or it was answered). None when there is nothing to rank."""
    annotator = clean_annotator(annotator)
    t = now()
    while True:
        with store.write() as s:
            pick = (
                s.get(Ranking, request_id)
                if request_id is not None
                else _next_for(s, annotator, run_id, t, stale_after)
            )
            if pick is None or pick.status not in PENDING:
                return None
            if pick.status == "claimed" and pick.claimed_by != annotator and (pick.claimed_at or 0) >= t - stale_after:
                return None  # the one asked for is someone else's now
            # the guard: the row is still as read (nobody claimed or answered it meanwhile)
            res = s.execute(
                sa.update(Ranking)
                .where(
                    col(Ranking.id) == pick.id,
                    col(Ranking.status) == pick.status,
                    col(Ranking.claimed_at).is_(None)
                    if pick.claimed_at is None
                    else col(Ranking.claimed_at) == pick.claimed_at,
                )
                .values(status="claimed", claimed_by=annotator, claimed_at=t)
            )
            if cast(CursorResult[Any], res).rowcount == 1:
                s.expire_all()
                return s.get(Ranking, pick.id)
            if request_id is not None:
                return None
        # lost the race: read again


def holders(
    store: Store, annotator: str, run_id: int | None = None, stale_after: float = STALE_CLAIM
) -> dict[str, int]:
    """Who else holds open requests right now (annotator -> how many): why a ranker may see nothing to rank."""
    t = now()
    with store.read() as s:
        q = select(Ranking.claimed_by, sa.func.count()).where(
            col(Ranking.status) == "claimed",
            col(Ranking.claimed_at) >= t - stale_after,
            col(Ranking.claimed_by) != clean_annotator(annotator),
        )
        if run_id is not None:
            q = q.where(col(Ranking.run_id) == run_id)
        rows = s.exec(q.group_by(col(Ranking.claimed_by))).all()
    return {str(who): int(n) for who, n in rows if who}


def submit(store: Store, ranking_id: int, order: Sequence[int], annotator: str) -> None:
    """Record a ranking. Refused (ConfigError) when the order is not a permutation of the candidates, or
    the request is no longer this annotator's (answered by someone else, withdrawn by its run)."""
    annotator = clean_annotator(annotator)
    with store.write() as s:
        row = s.get(Ranking, ranking_id)
        if row is None:
            raise ConfigError(f"no ranking request {ranking_id}")
        k = len(json.loads(row.candidates))
        if sorted(order) != list(range(k)):
            raise ConfigError(f"order {list(order)} is not an ordering of the {k} candidates (0..{k - 1}, each once)")
        res = s.execute(
            sa.update(Ranking)
            .where(
                col(Ranking.id) == ranking_id,
                col(Ranking.status).in_(PENDING),
                sa.or_(col(Ranking.status) == "open", col(Ranking.claimed_by) == annotator),
            )
            .values(
                status="done",
                best_first=json.dumps([int(i) for i in order]),
                annotator=annotator,
                answered_at=now(),
                claimed_by=annotator,
                content_hash=content_hash(
                    row.context, [c["text"] for c in json.loads(row.candidates)], [int(i) for i in order], annotator
                ),
            )
        )
        if cast(CursorResult[Any], res).rowcount != 1:
            why = (
                "was withdrawn by its run"
                if row.status == "expired"
                else "was already ranked"
                if row.status == "done"
                else f"is held by {row.claimed_by}"
            )
            raise ConfigError(f"request {ranking_id} {why}")


def skip(store: Store, ranking_id: int, annotator: str) -> None:
    """Give a request back; this annotator is not offered it again (someone else may rank it)."""
    annotator = clean_annotator(annotator)
    with store.write() as s:
        row = s.get(Ranking, ranking_id)
        if row is None or row.status not in PENDING:
            return
        skipped = sorted(set(json.loads(row.skipped_by)) | {annotator})
        s.execute(
            sa.update(Ranking)
            .where(col(Ranking.id) == ranking_id, col(Ranking.status).in_(PENDING))
            .values(status="open", claimed_by=None, claimed_at=None, skipped_by=json.dumps(skipped))
        )


def release(store: Store, ranking_id: int, annotator: str) -> None:
    """Put back a request this annotator holds, unranked (they left the screen)."""
    with store.write() as s:
        s.execute(
            sa.update(Ranking)
            .where(
                col(Ranking.id) == ranking_id,
                col(Ranking.status) == "claimed",
                col(Ranking.claimed_by) == clean_annotator(annotator),
            )
            .values(status="open", claimed_by=None, claimed_at=None)
        )


@dataclass
class Pending:
    run_id: int | None
    open: int  # not yet ranked (held by someone or not)
    done: int


def pending(store: Store) -> list[Pending]:
    """Per run with requests still open: how many wait and how many are answered."""
    with store.read() as s:
        rows = s.exec(
            select(Ranking.run_id, Ranking.status, sa.func.count())
            .where(col(Ranking.source) == "live")
            .group_by(col(Ranking.run_id), col(Ranking.status))
        ).all()
    by_run: dict[int | None, Pending] = {}
    for run_id, status, n in rows:
        p = by_run.setdefault(run_id, Pending(run_id, 0, 0))
        if status in PENDING:
            p.open += int(n)
        elif status == "done":
            p.done += int(n)
    return sorted((p for p in by_run.values() if p.open), key=lambda p: p.run_id or 0)


def open_count(store: Store, run_id: int | None = None) -> int:
    with store.read() as s:
        q = select(sa.func.count()).select_from(Ranking).where(col(Ranking.status).in_(PENDING))
        if run_id is not None:
            q = q.where(col(Ranking.run_id) == run_id)
        return int(s.exec(q).one())


def clean_annotator(name: str) -> str:
    name = " ".join(str(name).split())[:128]
    if not name:
        raise ConfigError("an annotator name is needed (--annotator NAME, or $PGG_ANNOTATOR)")
    return name


# ---------------------------------------------------------------------------------------------------
# files


def answered_count(store: Store, run_ids: Sequence[int] | None = None) -> int:
    """How many rankings the store holds (of the given runs), without reading them."""
    with store.read() as s:
        q = select(sa.func.count()).select_from(Ranking).where(col(Ranking.status) == "done")
        if run_ids:
            q = q.where(col(Ranking.run_id).in_(list(run_ids)))
        return int(s.exec(q).one())


def export(store: Store, run_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Every answered ranking (of the given runs), oldest first, as ranking-file records."""
    with store.read() as s:
        q = select(Ranking).where(col(Ranking.status) == "done").order_by(col(Ranking.id))
        if run_ids:
            q = q.where(col(Ranking.run_id).in_(list(run_ids)))
        rows = s.exec(q).all()
    return [record(r) for r in rows]


def record(r: Ranking) -> dict[str, Any]:
    return dict(
        context=r.context,
        candidates=[c["text"] for c in json.loads(r.candidates)],
        order=json.loads(r.best_first or "[]"),
        annotator=r.annotator,
        time=r.answered_at,
        task=r.task,
        run=r.run_id,
        heldout=r.heldout,
    )


@dataclass
class Imported:
    added: int = 0
    skipped: int = 0  # already in the store (the same context, candidates, order and annotator)


def import_records(store: Store, records: Iterable[dict[str, Any]], batch: int = 2000) -> int:
    """Add ranked lists (checked records, from `iter_file`) to the store as answered rankings; returns how
    many were added (`import_stream` also says how many were skipped)."""
    return import_stream(store, records, batch).added


def import_stream(store: Store, records: Iterable[dict[str, Any]], batch: int = 2000) -> Imported:
    """Insert in batches as the records stream in (a multi-GB file in bounded memory), skipping every
    record already stored or seen earlier in the stream: importing a file twice adds nothing twice."""
    done = Imported()
    chunk: list[dict[str, Any]] = []

    def flush() -> None:
        hashes = {content_hash(r["context"], r["candidates"], r["order"], r["annotator"]): r for r in chunk}
        with store.write() as s:
            present = set(s.exec(select(Ranking.content_hash).where(col(Ranking.content_hash).in_(list(hashes)))).all())
            rows = [
                Ranking(
                    run_id=None,
                    task=r["task"],
                    context=r["context"],
                    source="import",
                    content_hash=h,
                    candidates=json.dumps([{"text": c, "tokens": [], "rewards": []} for c in r["candidates"]]),
                    status="done",
                    best_first=json.dumps(r["order"]),
                    annotator=r["annotator"],
                    answered_at=r["time"],
                    heldout=r["heldout"],
                )
                for h, r in hashes.items()
                if h not in present
            ]
            if rows:
                s.connection().execute(sa.insert(table_of(Ranking)), [_row(x) for x in rows])
        done.added += len(rows)
        done.skipped += len(chunk) - len(rows)
        chunk.clear()

    for r in records:
        chunk.append(
            dict(
                r,
                annotator=str(r.get("annotator") or "import"),
                task=str(r.get("task") or ""),
                time=float(r["time"]) if r.get("time") is not None else now(),
                heldout=bool(r.get("heldout", False)),
            )
        )
        if len(chunk) >= batch:
            flush()
    if chunk:
        flush()
    return done


def _row(r: Ranking) -> dict[str, Any]:
    return {k: v for k, v in r.model_dump().items() if k != "id"}


def iter_jsonl(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(file:line, object) per non-empty line, read as it goes (a file of any size in bounded memory). Every
    problem is one line naming the file and line (ConfigError)."""
    p = Path(path).expanduser()
    try:
        f = open(p, encoding="utf-8")  # noqa: SIM115 (the with below closes it; open errors are told apart first)
    except FileNotFoundError:
        raise ConfigError(f"no file {p}") from None
    except IsADirectoryError:
        raise ConfigError(f"{p} is a folder, not a JSON Lines file") from None
    except OSError as err:
        raise ConfigError(f"cannot read {p}: {err}") from None
    seen = 0
    with f:
        n = 0
        while True:
            try:
                line = f.readline()
            except (OSError, UnicodeDecodeError) as err:
                raise ConfigError(f"cannot read {p} after line {n}: {err}") from None
            if not line:
                break
            n += 1
            if not line.strip():
                continue
            where = f"{p}:{n}"
            try:
                r = json.loads(line)
            except json.JSONDecodeError as err:
                raise ConfigError(f"{where}: not JSON ({err.msg})") from None
            except RecursionError:
                raise ConfigError(f"{where}: nested too deeply to be a ranked list") from None
            if not isinstance(r, dict):
                raise ConfigError(f"{where}: expected a JSON object")
            seen += 1
            yield where, r
    if not seen:
        raise ConfigError(f"{p} is empty")


def read_jsonl(path: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """`iter_jsonl` as a list."""
    return list(iter_jsonl(path))


def _text(where: str, name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {name} must be text")
    if "\x00" in value:
        raise ConfigError(f"{where}: {name} holds a NUL character")
    return value


def check_record(where: str, r: dict[str, Any], k: int | None = None) -> dict[str, Any]:
    """One ranked list, checked field by field: what a store or a run would choke on (or store wrongly, as
    `order: [true, false]` or `time: NaN`) is refused with one line naming where."""
    cands, order = r.get("candidates"), r.get("order")
    context = _text(where, "context", r.get("context", ""))
    if not isinstance(cands, list) or len(cands) < 2 or not all(isinstance(c, str) for c in cands):
        raise ConfigError(f"{where}: candidates must be a list of at least 2 texts")
    for c in cands:
        _text(where, "a candidate", c)
    if (
        not isinstance(order, list)
        or not all(type(i) is int for i in order)
        or sorted(order) != list(range(len(cands)))
    ):
        raise ConfigError(
            f"{where}: order must list every candidate index once, best first, as whole numbers (0..{len(cands) - 1})"
        )
    if k is not None and len(cands) != k:
        raise ConfigError(
            f"{where}: {len(cands)} candidates, but the run ranks lists of reward_k={k} "
            f"(set reward_k={len(cands)} to ground on this file)"
        )
    t = r.get("time")
    if t is not None and (type(t) not in (int, float) or not math.isfinite(t)):
        raise ConfigError(f"{where}: time must be seconds since 1970 (a finite number), not {json.dumps(t)[:40]}")
    if not isinstance(r.get("heldout", False), bool):
        raise ConfigError(f"{where}: heldout must be true or false")
    for name in ("annotator", "task"):
        if r.get(name) is not None:
            _text(where, name, r[name])
    return dict(r, context=context)


def iter_file(path: str | Path, k: int | None = None) -> Iterator[dict[str, Any]]:
    """A ranking file's checked records, as they are read (see the module's doc); with `k`, every list
    must have k candidates."""
    for where, r in iter_jsonl(path):
        yield check_record(where, r, k)


def read_file(path: str | Path, k: int | None = None) -> list[dict[str, Any]]:
    """`iter_file` as a list (a run's rankings_file)."""
    return list(iter_file(path, k))


def write_file(records: Iterable[dict[str, Any]], path: str | Path) -> int:
    n = 0
    with open(Path(path).expanduser(), "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
            n += 1
    return n


def from_pairs(lines: Iterable[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """`iter_pairs` as a list."""
    return list(iter_pairs(lines))


def iter_pairs(lines: Iterable[tuple[str, dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    """Ranked lists of two from a pairwise preference dataset ({prompt, chosen, rejected} per line, TRL's
    explicit-prompt preference format): the chosen answer first."""
    for where, r in lines:
        if not isinstance(r.get("chosen"), str) or not isinstance(r.get("rejected"), str):
            raise ConfigError(f"{where}: expected chosen and rejected texts (and a prompt)")
        yield check_record(
            where,
            dict(
                context=str(r.get("prompt", "")),
                candidates=[r["chosen"], r["rejected"]],
                order=[0, 1],
                annotator=str(r.get("annotator", "pairs")),
            ),
        )
