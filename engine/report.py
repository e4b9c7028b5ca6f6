"""What training code calls to record a run: phases, metrics, samples, log lines, progress, results.

`StoreReporter` buffers rows in memory and a background thread writes them in one transaction every
`interval` seconds (and at close), together with the run's heartbeat and progress. A killed process
loses at most the last interval. The training loop never waits on the store except at phase
boundaries, which are rare. `NullReporter` has the same signatures and does nothing (for tests and
library use); `MemoryReporter` keeps every row in lists (for tests that look at what was recorded).
`Reporter` is what the trainers may call, whichever of the three they are given. A run's rankings by
people go through `reporter.rankings` (engine.rankings.RunRankings), which only a StoreReporter has.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from typing import Any, Protocol

import sqlalchemy as sa

from engine import lifecycle
from engine.eta import Eta
from engine.rankings import RunRankings
from engine.resources import Usage
from engine.store import Store, now


class Reporter(Protocol):
    """What a trainer calls to record a run. Phase labels are "reward 1", "reward 2", ..., "policy", "eval"."""

    rankings: RunRankings | None  # where a run asks people to rank (preference=human); None without a store

    def begin_phase(self, kind: str, step: int) -> str:
        """End the open phase and open one of `kind` ("reward", "policy", "eval"); returns its label."""

    def end_phase(self, step: int) -> None: ...

    def metrics(self, step: int, values: dict[str, float]) -> None:
        """Named values (`phase/name`) at `step`, recorded in the open phase."""

    def samples(self, step: int, rows: list[dict[str, Any]]) -> None:
        """Generated sequences: kind, context, text, tokens, rewards, model_score, true_score, extra."""

    def log(self, text: str, stream: str = "engine") -> None: ...

    def progress(self, step: int, total: int | None = None) -> None: ...

    def plan(self, total: int, reward_at: list[int]) -> None:
        """The schedule ahead: `total` policy steps, the reward model retrained after each step in
        `reward_at` (for the ETA)."""

    def phase_progress(self, done: int, total: int) -> None:
        """Steps done of the current phase's at most `total` (a reward training's), for the progress bar."""

    def should_stop(self) -> bool:
        """A stop was asked for (cancel, SIGTERM): save a checkpoint and raise Cancelled."""

    def resumed(self, saved_at: float, step: int) -> str | None:
        """The run continues from a checkpoint saved at time `saved_at`, at `step`. Returns the label of the
        phase its records carry on (a retry inheriting its parent's rows up to the checkpoint), or None
        when they start afresh and the trainer opens the phase it is in."""

    def waiting(self, n: int) -> None:
        """The run waits for `n` rankings by people (0: it does not wait)."""

    def flush(self) -> None:
        """Returns once every row recorded so far is stored (before a checkpoint is written)."""

    def close(self) -> None: ...


# what a phase's log line reports, when the phase recorded it
RESOURCES_EVERY = 5.0  # seconds between readings of the run's CPU and memory

SUMMARY_METRICS = (
    "reward/best_val_loss",
    "reward/chance_loss",
    "reward/tau",
    "reward/human_tau",
    "policy/loss",
    "dev/score",
    "val/score",
    "test/accuracy",
    "test/rouge1",
    "test/score",
)


class NullReporter:
    """Same signatures as StoreReporter, records nothing."""

    run_id = 0
    phase_label = "setup"
    rankings: RunRankings | None = None

    def begin_phase(self, kind: str, step: int) -> str:
        self._count = getattr(self, "_count", {})
        self._count[kind] = self._count.get(kind, 0) + 1
        self.phase_label = lifecycle.phase_label(kind, self._count[kind])
        return self.phase_label

    def end_phase(self, step: int) -> None:
        pass

    def metrics(self, step: int, values: dict[str, float]) -> None:
        pass

    def samples(self, step: int, rows: list[dict[str, Any]]) -> None:
        pass

    def log(self, text: str, stream: str = "engine") -> None:
        pass

    def progress(self, step: int, total: int | None = None) -> None:
        pass

    def plan(self, total: int, reward_at: list[int]) -> None:
        pass

    def phase_progress(self, done: int, total: int) -> None:
        pass

    def should_stop(self) -> bool:
        return False

    def resumed(self, saved_at: float, step: int) -> str | None:
        return None  # no records to carry on

    def waiting(self, n: int) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


class MemoryReporter(NullReporter):
    """Keeps everything it is given, for tests."""

    def __init__(self) -> None:
        self.metric_rows: list[dict[str, Any]] = []
        self.sample_rows: list[dict[str, Any]] = []
        self.log_rows: list[str] = []
        self.phase_rows: list[tuple[str, int, int | None]] = []
        self.phase_steps: list[tuple[str, int, int]] = []  # (phase, done, total) as reported
        self.stop = False

    def begin_phase(self, kind: str, step: int) -> str:
        self.end_phase(step)
        label = super().begin_phase(kind, step)
        self.phase_rows.append((label, step, None))
        return label

    def end_phase(self, step: int) -> None:
        if self.phase_rows and self.phase_rows[-1][2] is None:
            label, start, _ = self.phase_rows[-1]
            self.phase_rows[-1] = (label, start, step)

    def metrics(self, step: int, values: dict[str, float]) -> None:
        self.metric_rows += [dict(step=step, phase=self.phase_label, name=k, value=float(v)) for k, v in values.items()]

    def samples(self, step: int, rows: list[dict[str, Any]]) -> None:
        self.sample_rows += [dict(r, step=step, phase=self.phase_label) for r in rows]

    def log(self, text: str, stream: str = "engine") -> None:
        self.log_rows.append(text)

    def phase_progress(self, done: int, total: int) -> None:
        self.phase_steps.append((self.phase_label, done, total))

    def should_stop(self) -> bool:
        return self.stop

    def series(self, name: str) -> list[float]:
        return [m["value"] for m in self.metric_rows if m["name"] == name]


class StoreReporter(NullReporter):
    """Buffered writer of one run's rows into the store."""

    def __init__(self, store: Store, run_id: int, interval: float = 1.0, echo: bool = False):
        self.store = store
        self.run_id = run_id
        self.rankings = RunRankings(store, run_id)
        self.interval = interval
        self.echo = echo  # also print log lines (foreground runs)
        self.phase_label = "setup"
        self._phase_id: int | None = None
        self._phase_began = (0, time.monotonic())  # (step, clock) where the open phase began
        self._phase_last: dict[str, float] = {}  # its latest values of SUMMARY_METRICS
        self._count: dict[str, int] = {}
        self._lock = threading.Lock()  # guards the buffers
        self._flush_lock = threading.Lock()  # one flush at a time: a flush returns once earlier rows are in
        self._metrics: list[dict[str, Any]] = []
        self._samples: list[dict[str, Any]] = []
        self._logs: list[dict[str, Any]] = []
        self._progress: dict[str, Any] = {}
        self._stop_requested = False
        self._waiting = 0
        self._closed = threading.Event()
        self.flush_seconds: list[float] = []  # wall time of each flush, for the benchmark
        self._nonfinite: set[str] = set()
        self.eta = Eta()
        self.usage = Usage()  # the process's CPU and memory, on the run's row every RESOURCES_EVERY seconds
        self._thread = threading.Thread(target=self._loop, name=f"reporter-{run_id}", daemon=True)
        self._thread.start()

    # -- phases are written at once: they are rare and the app's timeline wants them promptly
    def begin_phase(self, kind: str, step: int) -> str:
        self.end_phase(step)
        self._count[kind] = self._count.get(kind, 0) + 1
        index = self._count[kind]
        self.phase_label = lifecycle.phase_label(kind, index)
        self._phase_id = self.store.start_phase(self.run_id, kind, index, step)
        self._phase_began = (step, time.monotonic())
        self._phase_last = {}
        with self._lock:
            self.eta.begin(kind, step)
            self._progress.update(phase=self.phase_label, phase_step=0, phase_total=0)
        return self.phase_label

    def end_phase(self, step: int) -> None:
        with self._lock:
            self.eta.end(step)
        if self._phase_id is not None:
            self.log(self._phase_summary(step))
            self.flush()
            self.store.end_phase(self._phase_id, step)
            self._phase_id = None

    def _phase_summary(self, step: int) -> str:
        """One log line per phase: what it did and reached, so a run's log reads as its story."""
        first, began = self._phase_began
        last = self._phase_last
        took = time.monotonic() - began
        reached = ", ".join(f"{k} {last[k]:.4g}" for k in SUMMARY_METRICS if k in last)
        return f"{self.phase_label} ended: steps {first}–{step} in {took:.1f}s" + (f"; {reached}" if reached else "")

    # -- buffered rows
    def metrics(self, step: int, values: dict[str, float]) -> None:
        t = now()
        self._phase_last.update({k: float(v) for k, v in values.items() if k in SUMMARY_METRICS})
        rows = []
        for k, v in values.items():
            v = float(v)
            if not math.isfinite(v):  # SQL has no NaN: say so once per name instead of poisoning the batch
                if k not in self._nonfinite:
                    self._nonfinite.add(k)
                    self.log(f"metric {k} is {v} at step {step}; non-finite values are not recorded", "stderr")
                continue
            rows.append(dict(step=step, phase=self.phase_label, name=k, value=v, time=t))
        with self._lock:
            self._metrics.extend(rows)

    def samples(self, step: int, rows: list[dict[str, Any]]) -> None:
        t = now()
        out = []
        for r in rows:
            out.append(
                dict(
                    step=step,
                    phase=self.phase_label,
                    time=t,
                    kind=r.get("kind", "policy"),
                    context=_text(r.get("context", "")),
                    text=_text(r.get("text", "")),
                    tokens=json.dumps([_text(x) for x in r.get("tokens", [])]),
                    rewards=json.dumps([round(float(x), 6) for x in r.get("rewards", [])]),
                    model_score=_opt_float(r.get("model_score")),
                    true_score=_opt_float(r.get("true_score")),
                    extra=json.dumps(r.get("extra", {})),
                )
            )
        with self._lock:
            self._samples.extend(out)

    def log(self, text: str, stream: str = "engine") -> None:
        if self.echo:
            print(text, file=sys.stderr if stream == "stderr" else sys.stdout, flush=True)
        with self._lock:
            self._logs.append(dict(time=now(), stream=stream, text=_text(text)))

    def progress(self, step: int, total: int | None = None) -> None:
        with self._lock:
            self._progress["step"] = step
            self.eta.progress(step)
            if total is not None:
                self._progress["total_steps"] = total

    def plan(self, total: int, reward_at: list[int]) -> None:
        with self._lock:
            self.eta.plan(total, reward_at)

    def phase_progress(self, done: int, total: int) -> None:
        with self._lock:
            self._progress.update(phase_step=done, phase_total=total)
            self.eta.inside(done, total)

    def should_stop(self) -> bool:
        return self._stop_requested

    def resumed(self, saved_at: float, step: int) -> str | None:
        """A retried run resuming its parent's checkpoint inherits the parent's rows up to it; a run resuming
        its own (a requeued Slurm job) keeps its rows up to it and drops the later ones."""
        parent = self.store.get(self.run_id).parent_id
        if self.store.metrics(self.run_id)[:1] or self.store.phases(self.run_id)[:1]:
            self._count, current = self.store.rewind(self.run_id, saved_at)
        elif parent is None:
            return None
        else:
            self._count, current = self.store.copy_history(parent, self.run_id, saved_at)
        if current is None:
            return None
        # carry on the phase the checkpoint was taken in
        self._phase_id = current.id
        self.phase_label = lifecycle.phase_label(current.kind, current.index)
        with self._lock:
            self.eta.begin(current.kind, step)  # timed from the resume: the parent's rate is another machine's
        return self.phase_label

    def waiting(self, n: int) -> None:
        with self._lock:
            changed = self._waiting != n
            self._waiting = n
            self._progress["waiting_for"] = n
        if changed:
            self.flush()  # the app shows "waiting for N rankings" at once

    def request_stop(self) -> None:
        """From a signal handler: stop at the next step boundary."""
        self._stop_requested = True

    # -- flushing
    def flush(self) -> None:
        """Write the buffered rows. Returns only once every row recorded before the call is in the store
        (a checkpoint relies on it), or has been kept for the next try because the store is unreachable."""
        with self._flush_lock:
            with self._lock:
                left = self.eta.seconds_left()
                if self.eta.total:
                    self._progress["eta_at"] = None if left is None else now() + left
                usage = self.usage.read(every=RESOURCES_EVERY)
                if usage is not None:
                    self._progress["resources"] = json.dumps(usage)
                metrics, samples, logs, progress = self._metrics, self._samples, self._logs, self._progress
                self._metrics, self._samples, self._logs, self._progress = [], [], [], {}
            t0 = time.perf_counter()
            try:
                cancel = self._append(metrics, samples, logs, progress)
            except sa.exc.OperationalError as err:  # locked past the timeout, disk full: keep the rows, retry
                with self._lock:
                    self._metrics[:0], self._samples[:0], self._logs[:0] = metrics, samples, logs
                    self._progress = {**progress, **self._progress}
                print(f"pgg: store write failed, will retry: {str(err.orig).splitlines()[0][:200]}", file=sys.stderr)
                return
            self.flush_seconds.append(time.perf_counter() - t0)
            if cancel:
                self._stop_requested = True

    def _append(
        self,
        metrics: list[dict[str, Any]],
        samples: list[dict[str, Any]],
        logs: list[dict[str, Any]],
        progress: dict[str, Any],
    ) -> bool:
        """One transaction for the batch; if the store rejects it (a value out of range, say), each row on
        its own, so that only the bad rows are dropped, with one warning."""
        try:
            return self.store.append(self.run_id, metrics, samples, logs, progress)
        except sa.exc.OperationalError:
            raise
        except Exception:
            pass
        dropped, first = 0, ""
        for kind, rows in (("metrics", metrics), ("samples", samples), ("logs", logs)):
            for row in rows:
                try:
                    self.store.append(
                        self.run_id, **{"metrics": [], "samples": [], "logs": [], kind: [row]}, progress=None
                    )
                except sa.exc.OperationalError:
                    raise
                except Exception as err:
                    dropped += 1
                    first = first or f"{kind[:-1]} {str(row)[:80]}: {str(err).splitlines()[0][:120]}"
        print(f"pgg: store rejected {dropped} row(s), dropped; first: {first}", file=sys.stderr)
        return self.store.append(self.run_id, [], [], [], progress)

    def _loop(self) -> None:
        while not self._closed.wait(self.interval):
            self.flush()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._thread.join(timeout=30)
        self.flush()


def _text(x: Any) -> str:
    """Text as every backend stores it: PostgreSQL refuses NUL characters (a sampled token may hold one)."""
    return str(x).replace("\x00", "\ufffd")


def _opt_float(x: Any) -> float | None:
    return None if x is None else float(x)
