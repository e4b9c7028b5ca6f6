"""Both tasks trained on people's rankings: ListMLE on a ranking is ListMLE on the automatic score that
gives the same order; runs grounded on a ranking file, and a live run that waits for rankers, finish."""

import json
import time
from pathlib import Path

import pytest
import torch

from engine import rankings
from engine.config import to_json
from engine.errors import ConfigError
from engine.losses import listmle_chance
from engine.preferences import Ranked
from engine.registry import plan_runs
from engine.report import MemoryReporter, NullReporter
from engine.store import Store
from engine.summarize import people as sum_people
from engine.summarize import train as sum_train
from support.runs import engine_run


def tiny(task, dataset, *sets):
    return plan_runs(task, dataset, "pgg", preset="tiny", overrides=list(sets))[0].config


def test_preference_settings_are_checked_before_a_run_starts():
    with pytest.raises(ConfigError, match="preference=human trains the token reward model: it needs method=pgg"):
        plan_runs("summarize", "toy-news", "mle", preset="tiny", overrides=["preference=human"])
    with pytest.raises(ConfigError, match="human_share=1.5: must be in"):
        tiny("prompt", "toy-sentiment", "preference=mixed", "human_share=1.5")
    with pytest.raises(ConfigError, match="rank_heldout=1.0: must be in"):
        tiny("prompt", "toy-sentiment", "preference=human", "rank_heldout=1")
    with pytest.raises(ConfigError, match="choose one of auto, human, mixed"):
        tiny("prompt", "toy-sentiment", "preference=people")


def test_listmle_on_a_ranking_equals_listmle_on_the_score_that_orders_it(tmp_path):
    """The reward phase treats a person's order exactly as the automatic score's: same samples, same
    order -> same loss, through ranked_batch's re-tokenised, re-padded tensors."""
    cfg = tiny("summarize", "toy-news", "reward_k=4")
    ctx = sum_train.setup(cfg, NullReporter(), tmp_path)
    pairs = ctx.pairs.train[:3]
    src, _ = sum_train.encode(ctx, pairs)
    seqs = sum_train.sample_summaries(ctx, src, 4, cfg.reward_top_k)
    true = torch.tensor([[0.3, 0.9, 0.1, 0.5], [0.2, 0.4, 0.8, 0.6], [0.7, 0.1, 0.3, 0.2]])  # no ties
    torch.manual_seed(7)
    auto = sum_train.reward_listmle(ctx, pairs, src, seqs, true)
    mask = sum_train.sequence_mask(ctx, seqs)
    lists = []
    for a, (source, ref) in enumerate(pairs):
        ids = [seqs[a * 4 + j][: int(mask[a * 4 + j].nonzero().max()) + 1].tolist() for j in range(4)]
        order = sorted(range(4), key=lambda j: -float(true[a, j]))
        lists.append(Ranked(source, ["?"] * 4, order, dict(source=source, reference=ref, ids=ids)))
    h_pairs, h_src, h_seqs, h_true = sum_people.ranked_batch(ctx, lists)
    torch.manual_seed(7)
    human = sum_train.reward_listmle(ctx, h_pairs, h_src, h_seqs, h_true)
    assert abs(auto.item() - human.item()) < 1e-5 and auto.item() > 0.1


def easy_rankings(path: Path, pairs, k=3):
    """The reference first, its first word next, an off-topic line last: an order a reward model can learn."""
    with open(path, "w") as f:
        for s, t in pairs:
            f.write(
                json.dumps(
                    dict(
                        context=s,
                        candidates=["nothing to see here", t, t.split()[0]][:k],
                        order=[1, 2, 0][:k] if k == 3 else [1, 0],
                    )
                )
                + "\n"
            )
    return path


@pytest.mark.slow
def test_summarization_grounded_on_a_ranking_file_learns_the_order(tmp_path):
    from engine.summarize.data import load_pairs

    path = easy_rankings(tmp_path / "r.jsonl", load_pairs(tiny("summarize", "toy-news")).train[:16])
    cfg = tiny("summarize", "toy-news", "preference=human", f"rankings_file={path}")
    rep = MemoryReporter()
    res = sum_train.train(cfg, rep, tmp_path / "run")
    assert res["reward_trainings"] == 5 and res["queries/human"] == 16
    held = rep.series("reward/human_val_loss")
    assert len(held) == 5 and held[-1] < 0.5 * listmle_chance(3)  # 4 of 16 held out, ranked well
    assert res["reward/human_tau"] > 0.5
    assert any("grounding on 16 ranked lists" in line for line in rep.log_rows)


@pytest.mark.slow
@pytest.mark.parametrize("preference", ["human", "mixed"])
def test_prompt_task_grounded_on_a_ranking_file_finishes(tmp_path, preference):
    from engine.prompt import train as prompt_train

    path = tmp_path / "r.jsonl"
    with open(path, "w") as f:
        for _i in range(12):  # prompt texts of unequal token lengths: masked aggregation
            f.write(
                json.dumps(
                    dict(context="toy", candidates=["great fantastic film", "bad", "the movie was"], order=[0, 2, 1])
                )
                + "\n"
            )
    cfg = tiny("prompt", "toy-sentiment", f"preference={preference}", f"rankings_file={path}", "reward_k=3")
    rep = MemoryReporter()
    res = prompt_train.train(cfg, rep, tmp_path / "run")
    assert res["reward_trainings"] >= 1 and "test/accuracy" in res
    assert res["reward/human_tau"] > 0.5  # 3 of 12 held out
    assert rep.series("reward/loss")[-1] < rep.series("reward/loss")[0]


@pytest.mark.slow
def test_a_live_run_waits_for_rankers_and_finishes_on_their_rankings(db):
    """Queued with preference=human, the run asks, waits ('waiting for N rankings'), and goes on as people
    rank; every reward training asks again; the rankings are exported with the run's id."""
    store = Store.open(db)
    (rid,) = store.queue(
        plan_runs(
            "summarize",
            "toy-news",
            "pgg",
            preset="tiny",
            overrides=["preference=human", "rank_lists=2", "rank_heldout=0.5"],
        ),
        to_json,
    )
    proc = engine_run(db, rid)
    seen_waiting, ranked, deadline = False, 0, time.monotonic() + 240
    while proc.poll() is None:
        assert time.monotonic() < deadline, "the run never finished"
        seen_waiting = seen_waiting or store.get(rid).waiting_for > 0
        r = rankings.claim(store, "ana")
        if r is None:
            time.sleep(0.2)
            continue
        k = len(json.loads(r.candidates))
        rankings.submit(store, r.id, list(range(k)), "ana")
        ranked += 1
    assert proc.returncode == 0, proc.stderr.read()
    run = store.get(rid)
    res = json.loads(run.results)
    assert run.status == "done" and seen_waiting and run.waiting_for == 0
    assert ranked == 10 and res["queries/human"] == 10  # 2 lists at each of 5 reward trainings
    assert "reward/human_tau" in res
    out = rankings.export(store, [rid])
    assert len(out) == 10 and all(r["annotator"] == "ana" and r["run"] == rid for r in out)
    names = {m.name for m in store.metrics(rid)}
    assert {"reward/human_val_loss", "reward/human_tau", "queries/human"} <= names
    from typer.testing import CliRunner

    from pgg_tui.cli import app

    shown = CliRunner().invoke(app, ["show", str(rid), "--db", db]).output
    assert "people    Kendall tau on held-out rankings per reward phase" in shown and "10 ranking(s) by people" in shown


def test_early_stopping_and_the_reported_human_tau_use_disjoint_held_out_lists(tmp_path, monkeypatch):
    """The reward model is chosen (early stopping, best weights) on one half of the held-out rankings and its
    grounding against people reported on the other, so reward/human_tau is not the number it was picked for."""
    from engine.prompt import people as prompt_people
    from engine.prompt import train as prompt_train

    path = tmp_path / "r.jsonl"
    with open(path, "w") as f:
        for i in range(16):  # rank_heldout 0.25: 4 held out
            f.write(
                json.dumps(dict(context="toy", candidates=[f"great film {i}", "bad", "the movie was"], order=[0, 2, 1]))
                + "\n"
            )
    cfg = tiny("prompt", "toy-sentiment", "preference=human", f"rankings_file={path}", "reward_k=3")
    ctx = prompt_train.setup(cfg, NullReporter(), tmp_path / "run")
    seen = []
    real = prompt_people.ranked_batch
    monkeypatch.setattr(
        prompt_people, "ranked_batch", lambda c, lists: seen.append([r.texts[0] for r in lists]) or real(c, lists)
    )
    prompt_people.human_val_loss(ctx)
    out = prompt_people.human_validation(ctx)
    selected, reported = seen
    assert len(selected) == len(reported) == 2 and not set(selected) & set(reported)
    assert set(selected) | set(reported) == {r.texts[0] for r in ctx.pool.heldout}
    assert "reward/human_tau" in out


def test_a_prompt_runs_requests_say_what_each_prompt_does(db, tmp_path, monkeypatch):
    """preference=human on the prompt task: every candidate of a request carries what the Rank screen shows on
    `v` (docs/rankings.md): the automatic score the run orders by without people (rank_fallback=auto's order),
    the task LM's accuracy, and its verdict on each example the ranker is shown. Shown only: no signal queries."""
    import threading

    from engine.prompt import people as prompt_people
    from engine.prompt import train as prompt_train
    from engine.report import StoreReporter

    monkeypatch.setattr("engine.preferences.POLL", 0.05)
    store = Store.open(db)
    plan = plan_runs(
        "prompt", "toy-sentiment", "pgg", preset="tiny", overrides=["preference=human", "rank_lists=2", "reward_k=3"]
    )
    (rid,) = store.queue(plan, to_json)
    reporter = StoreReporter(store, rid, interval=0.1)
    ctx = prompt_train.setup(plan[0].config, reporter, tmp_path / "run")
    asking = threading.Thread(target=prompt_people.collect, args=(ctx,), daemon=True)
    asking.start()
    seen, deadline = [], time.monotonic() + 60
    while len(seen) < 2:
        assert time.monotonic() < deadline, "the run never asked"
        r = rankings.claim(store, "ana")
        if r is None:
            time.sleep(0.05)
            continue
        seen.append((r.context, json.loads(r.candidates)))
        rankings.submit(store, r.id, [2, 1, 0], "ana")
    asking.join(10)
    reporter.close()
    assert not asking.is_alive()
    spent = dict(ctx.state.queries)  # before the checks below score the prompts again

    words = {"terrible", "great"}
    for context, cands in seen:
        shown = [line.strip() for line in context.splitlines()[1:]]  # "'text' -> gold" per shown example
        assert len(cands) == 3 and len(shown) == 3
        for c in cands:
            auto = c["auto"]
            assert auto["examples"] == len(ctx.splits.train) and 0 <= auto["accuracy"] <= 1
            assert [f"{v['text']!r} -> {v['gold']}" for v in auto["verdicts"]] == shown
            assert all(v["said"] in words for v in auto["verdicts"])
        # the stored score is the automatic one: it orders the list as rank_fallback=auto would
        scores = [c["auto"]["score"] for c in cands]
        listed = [Ranked(context, [c["text"] for c in cands], [0, 1, 2])]
        assert prompt_people.automatic_orders(ctx, listed) == [sorted(range(3), key=lambda i: -scores[i])]
    assert spent["signal"] == 0 and spent["logging"] > 0
