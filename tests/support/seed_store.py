"""A store with runs in every state and realistic rows, written directly (no training): for app tests."""

import json

import sqlalchemy as sa

from engine.config import to_json
from engine.registry import plan_runs
from engine.store import Phase, Run, Store

T0 = 1_760_000_000.0  # a fixed clock, so screens render the same every time


def seed(db: str) -> Store:
    st = Store.open(db)
    plan = [  # task, dataset, method, seeds, overrides, status, results
        ("prompt", "toy-sentiment", "pgg", "0-2", [], "done", [91.5, 92.6, 93.1]),
        ("prompt", "toy-sentiment", "rlprompt", "0-1", [], "done", [89.0, 90.4]),
        ("prompt", "toy-sentiment", "pgg", "0", ["agg=max"], "done", [90.8]),
        ("summarize", "toy-news", "pgg", "0", [], "running", None),
        ("prompt", "toy-sentiment", "seq-reinforce", "0", [], "failed", None),
        ("prompt", "toy-sentiment", "pgg", "3", [], "queued", None),
    ]
    ids = []
    for task, dataset, method, seeds, overrides, status, results in plan:
        new = st.queue(plan_runs(task, dataset, method, seeds, "0", "tiny", "", overrides), to_json)
        for i, rid in enumerate(new):
            values = dict(status=status, created_at=T0 + rid, group_id=f"sweep{len(ids):02d}"[:12])
            if status != "queued":
                values.update(
                    started_at=T0 + 100 + rid,
                    heartbeat_at=T0 + 400,
                    phase="policy",
                    total_steps=60 if task == "prompt" else 24,
                    step=60 if status == "done" else 10,
                    pid=None,
                )
            if status in ("done", "failed"):
                values.update(finished_at=T0 + 300 + rid, phase="eval" if status == "done" else "policy")
            if results:
                values["results"] = json.dumps(
                    {"test/accuracy": results[i], "dev/score": 40.0 + i, "prompt": "great film"}
                )
            if status == "running":
                values.update(eta_at=T0 + 500 + 560)  # the engine's estimate: 9m20s left at the tests' clock
            if task == "prompt" and method == "pgg" and status == "done" and not overrides:
                values.update(name="baseline", tags='["paper"]')
            if status == "queued":
                values.update(priority=2)
            if status == "failed":
                values.update(
                    error="Traceback (most recent call last):\n  ...\nRuntimeError: CUDA out of memory", exit_code=1
                )
            with st.write() as s:
                s.execute(sa.update(Run).where(Run.id == rid).values(**values))
            add_rows(st, rid, task, status)
        ids += new
    return st


def add_rows(st: Store, rid: int, task: str, status: str) -> None:
    if status == "queued":
        return
    metrics, samples = [], []
    t = T0 + 200
    for k in (1, 2):
        for step in range(1, 11):
            metrics.append(
                dict(step=step, phase=f"reward {k}", name="reward/loss", value=4.8 - 0.05 * step * k, time=t)
            )
        metrics.append(dict(step=10, phase=f"reward {k}", name="reward/val_loss", value=4.6 - 0.1 * k, time=t))
    for step in range(1, 61 if status != "running" else 11):
        metrics += [
            dict(step=step, phase="policy", name="policy/loss", value=2.0 - step / 60, time=t),
            dict(step=step, phase="policy", name="policy/entropy", value=6.0 - step / 30, time=t),
            dict(step=step, phase="policy", name="lr", value=5e-5, time=t),
        ]
        if step % 10 == 0:
            metrics.append(
                dict(
                    step=step,
                    phase="policy",
                    name="dev/score" if task == "prompt" else "val/score",
                    value=step / 6,
                    time=t,
                )
            )
            if task == "summarize":  # a validation records its ROUGE-1 beside the summed score, as the engine does
                metrics.append(dict(step=step, phase="policy", name="val/rouge1", value=step * 4.0, time=t))
    for j in range(6):
        tokens = ["Rated", " Cinema", "Score", " Grade", " film"]
        rewards = [0.2 + 0.2 * ((i + j) % 5) for i in range(5)]
        samples.append(
            dict(
                step=10 * j,
                phase="reward 1" if j < 3 else "policy",
                kind="reward" if j < 3 else "policy",
                context="toy-sentiment",
                text="".join(tokens),
                tokens=json.dumps(tokens),
                rewards=json.dumps(rewards),
                model_score=sum(rewards),
                true_score=10.0 - j,
                extra=json.dumps({"epoch": j}),
                time=t,
            )
        )
    st.append(
        rid, metrics, samples, [dict(time=t, stream="stdout", text=f"run {rid}: step {s}") for s in range(3)], None
    )
    with st.write() as s:
        for kind, idx, a, b in (
            ("reward", 1, 0, 0),
            ("policy", 1, 0, 20),
            ("reward", 2, 20, 20),
            ("policy", 2, 20, 60),
        ):
            s.add(
                Phase(
                    run_id=rid,
                    kind=kind,
                    index=idx,
                    start_step=a,
                    end_step=b,
                    started_at=T0 + 100 + a * 2,
                    ended_at=T0 + 110 + b * 2,
                )
            )


ARTICLE = (
    "The Millbrook water authority voted 8 to 3 on Thursday to replace the water pipes. The plan will cost "
    "about 23 million dollars and work should start next year. Officials said demand has doubled."
)
SUMMARIES = (
    ["The", " authority", " voted", " to", " replace", " pipes", "."],
    ["Millbrook", " will", " spend", " 23", " million", " dollars", "."],
    ["Officials", " said", " demand", " doubled", "."],
)


def seed_rankings(st: Store, run_id: int = 7, n: int = 2) -> list[int]:
    """The running summarization run waits for `n` rankings of three summaries each, token rewards included."""
    from engine import rankings

    requests = [
        rankings.Request(
            context=ARTICLE,
            payload={},
            candidates=[
                dict(
                    text="".join(toks),
                    tokens=list(toks),
                    rewards=[0.3 + 0.1 * ((i + j + r) % 6) for i in range(len(toks))],
                )
                for j, toks in enumerate(SUMMARIES)
            ],
        )
        for r in range(n)
    ]
    ids = rankings.ask(st, run_id, 1, "summarize", requests)
    with st.write() as s:
        s.execute(sa.update(Run).where(Run.id == run_id).values(waiting_for=n, phase="reward 1"))
    return ids
