"""A store's bulk work on one run's recorded rows (metrics, samples, log lines, phases): the reads the CLI and the
app make of them, and the copying of a run's history into the attempt resuming it. `engine.store.Store`
inherits this; on its own it is nothing, as it reads and writes through the Store's transactions.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager

import sqlalchemy as sa
from sqlmodel import Session, col, select

from engine.schema import LogLine, Metric, Phase, Sample, table_of


class RunRows:
    def read(self) -> AbstractContextManager[Session]:
        raise NotImplementedError  # engine.store.Store's short read transaction

    def write(self) -> AbstractContextManager[Session]:
        raise NotImplementedError  # engine.store.Store's write transaction

    # -----------------------------------------------------------------------------------------------
    # a resuming attempt's history

    def copy_history(self, src: int, dst: int, until: float) -> tuple[dict[str, int], Phase | None]:
        """Copy a run's rows recorded up to time `until` (its checkpoint) into the run resuming from it.

        Returns how many phases of each kind were copied (so the resuming run numbers its next reward
        phase on from them) and the copied phase that was still open at the checkpoint, left open for
        the resuming run to carry on.
        """
        with self.write() as s:
            conn = s.connection()
            for table in (table_of(Metric), table_of(Sample)):
                cols = [c.name for c in table.columns if c.name not in ("id", "run_id")]
                rows = (
                    sa.select(sa.literal(dst), *[table.c[c] for c in cols])
                    .where(table.c.run_id == src, table.c.time <= until)
                    .order_by(table.c.id)
                )
                conn.execute(table.insert().from_select(["run_id", *cols], rows))
            counts: dict[str, int] = {}
            current = None
            for ph in s.exec(
                select(Phase).where(Phase.run_id == src, col(Phase.started_at) <= until).order_by(col(Phase.id))
            ).all():
                open_at_ckpt = ph.ended_at is None or ph.ended_at > until
                copy = Phase(
                    run_id=dst,
                    kind=ph.kind,
                    index=ph.index,
                    start_step=ph.start_step,
                    end_step=None if open_at_ckpt else ph.end_step,
                    started_at=ph.started_at,
                    ended_at=None if open_at_ckpt else ph.ended_at,
                )
                s.add(copy)
                counts[ph.kind] = max(counts.get(ph.kind, 0), ph.index)
                if open_at_ckpt:
                    current = copy
            s.flush()
            return counts, current

    def rewind(self, run_id: int, until: float) -> tuple[dict[str, int], Phase | None]:
        """A run resuming its own checkpoint (a Slurm job requeued after a preemption): drop the metrics,
        samples and phases it recorded after time `until` (the checkpoint), so that its steps do not
        repeat, and reopen the phase that was open then. Returns what copy_history returns."""
        with self.write() as s:
            conn = s.connection()
            for table in (table_of(Metric), table_of(Sample)):
                conn.execute(table.delete().where(table.c.run_id == run_id, table.c.time > until))
            s.execute(sa.delete(Phase).where(col(Phase.run_id) == run_id, col(Phase.started_at) > until))
            counts: dict[str, int] = {}
            current = None
            for ph in s.exec(select(Phase).where(Phase.run_id == run_id).order_by(col(Phase.id))).all():
                counts[ph.kind] = max(counts.get(ph.kind, 0), ph.index)
                if ph.ended_at is None or ph.ended_at > until:
                    ph.end_step, ph.ended_at = None, None
                    s.add(ph)
                    current = ph
            s.flush()
            return counts, current

    # -----------------------------------------------------------------------------------------------
    # reads for the CLI and the app (incremental: rows after a given id)

    def metrics(self, run_id: int, after_id: int = 0, names: Sequence[str] | None = None) -> list[Metric]:
        with self.read() as s:
            q = select(Metric).where(Metric.run_id == run_id, col(Metric.id) > after_id).order_by(col(Metric.id))
            if names:
                q = q.where(col(Metric.name).in_(list(names)))
            return list(s.exec(q).all())

    def metric_tuples(self, run_id: int, after_id: int = 0) -> list[tuple[int, str, int, str, float]]:
        """(id, phase, step, name, value) rows after `after_id`: the app's hot read, without ORM objects."""
        t = table_of(Metric)
        with self.read() as s:
            rows = (
                s.connection()
                .execute(
                    sa.select(t.c.id, t.c.phase, t.c.step, t.c.name, t.c.value)
                    .where(t.c.run_id == run_id, t.c.id > after_id)
                    .order_by(t.c.id)
                )
                .all()
            )
        return [tuple(r) for r in rows]

    def metric_names(self, run_ids: Sequence[int]) -> list[str]:
        """Every metric name these runs recorded, sorted."""
        t = table_of(Metric)
        with self.read() as s:
            rows = s.connection().execute(sa.select(t.c.name).distinct().where(t.c.run_id.in_(list(run_ids)))).all()
        return sorted(r[0] for r in rows)

    def metric_series(self, run_ids: Sequence[int], name: str) -> list[tuple[int, int, float, float]]:
        """(run id, step, time, value) of one metric over several runs, in the order recorded."""
        t = table_of(Metric)
        with self.read() as s:
            rows = (
                s.connection()
                .execute(
                    sa.select(t.c.run_id, t.c.step, t.c.time, t.c.value)
                    .where(t.c.run_id.in_(list(run_ids)), t.c.name == name)
                    .order_by(t.c.id)
                )
                .all()
            )
        return [tuple(r) for r in rows]

    def samples(self, run_id: int, after_id: int = 0, limit: int | None = None) -> list[Sample]:
        with self.read() as s:
            q = select(Sample).where(Sample.run_id == run_id, col(Sample.id) > after_id).order_by(col(Sample.id))
            if limit:
                q = q.limit(limit)
            return list(s.exec(q).all())

    def logs(self, run_id: int, after_id: int = 0) -> list[LogLine]:
        with self.read() as s:
            return list(
                s.exec(
                    select(LogLine)
                    .where(LogLine.run_id == run_id, col(LogLine.id) > after_id)
                    .order_by(col(LogLine.id))
                ).all()
            )

    def phases(self, run_id: int) -> list[Phase]:
        with self.read() as s:
            return list(s.exec(select(Phase).where(Phase.run_id == run_id).order_by(col(Phase.id))).all())

    def latest_metrics(self, run_ids: Sequence[int], names: Sequence[str]) -> dict[tuple[int, str], float]:
        """The last value of each named metric for each run, in one query."""
        return {k: value for k, (_, value) in self.latest_metric_rows(run_ids, names).items()}

    def latest_metric_rows(
        self, run_ids: Sequence[int], names: Sequence[str]
    ) -> dict[tuple[int, str], tuple[str, float]]:
        """(phase label, value) of the last row of each named metric for each run, in one query: the phase
        tells whether two metrics' last values come from the same phase ("reward 3")."""
        if not run_ids:
            return {}
        with self.read() as s:
            last = (
                select(Metric.run_id, Metric.name, sa.func.max(Metric.id).label("mid"))
                .where(col(Metric.run_id).in_(list(run_ids)), col(Metric.name).in_(list(names)))
                .group_by(col(Metric.run_id), col(Metric.name))
                .subquery()
            )
            rows = s.execute(
                select(Metric.run_id, Metric.name, Metric.phase, Metric.value).join(last, col(Metric.id) == last.c.mid)
            ).all()
        return {(r[0], r[1]): (r[2], r[3]) for r in rows}
