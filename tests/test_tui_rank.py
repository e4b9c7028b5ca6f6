"""Pilot tests of the rank screen (pgg_tui/screens/rank.py): people rank a waiting run's requests."""

import re

from textual.widgets import DataTable, Static

from pgg_tui.app import PggApp
from support import seed_store
from support.pilot import settle, table_keys


async def test_rank_through_the_app_and_the_waiting_run_goes_on(store, monkeypatch):
    """R on a run waiting for rankings opens its requests; number keys order, Enter records; the run's
    reward phase, waiting in its own thread, continues once both are ranked; s skips; Esc puts back."""
    import threading

    from engine import rankings
    from engine.preferences import Pool
    from engine.registry import plan_runs
    from engine.report import StoreReporter

    monkeypatch.setattr("engine.preferences.POLL", 0.05)
    ids = seed_store.seed_rankings(store, 7, 3)
    cfg = plan_runs(
        "summarize", "toy-news", "pgg", preset="tiny", overrides=["preference=human", "rank_lists=3", "rank_heldout=0"]
    )[0].config
    reporter = StoreReporter(store, 7, interval=0.1)
    pool = Pool(cfg, reporter, "summarize")
    waiting = threading.Thread(target=pool.collect, args=(1, None, None), daemon=True)  # asked already: resumes
    waiting.start()
    app = PggApp(store, poll=0.2, annotator="ana")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        table = app.screen.query_one(DataTable)
        table.move_cursor(row=table_keys(app).index("7"))
        assert "rank 3 (R)" in str(table.get_row("7"))
        await pilot.press("R")
        await settle(pilot)
        header = str(app.screen.query_one("#rank-header", Static).render())
        assert f"request {ids[0]}" in header and "as ana" in header and "3 left" in header
        await pilot.press("2", "enter")  # the second summary best, then the first, then the third
        await settle(pilot)
        assert rankings.answers(store, ids) == {ids[0]: [1, 0, 2]}
        assert f"request {ids[1]}" in str(app.screen.query_one("#rank-header", Static).render())
        await pilot.press("s")  # skipped: not offered to ana again; nothing else is left for her
        await settle(pilot)
        assert f"request {ids[2]}" in str(app.screen.query_one("#rank-header", Static).render())
        await pilot.press("down", "shift+down", "enter")  # moved the 2nd candidate down: 0, 2, 1
        await settle(pilot)
        assert rankings.answers(store, ids)[ids[2]] == [0, 2, 1]
        assert "nothing to rank" in str(app.screen.query_one("#rank-header", Static).render())
        await pilot.press("escape")
        await settle(pilot)
    assert waiting.is_alive()  # one request (skipped by ana) is still unranked
    r = rankings.claim(store, "bob")
    assert r.id == ids[1]
    rankings.submit(store, r.id, [2, 1, 0], "bob")
    waiting.join(10)
    reporter.close()
    assert not waiting.is_alive() and store.get(7).waiting_for == 0
    assert sorted((tuple(x.order), x.annotator) for x in pool.lists) == [
        ((0, 2, 1), "ana"),
        ((1, 0, 2), "ana"),
        ((2, 1, 0), "bob"),
    ]


async def test_a_number_key_above_k_says_why_it_did_nothing(store):
    seed_store.seed_rankings(store, 7, 3)
    app = PggApp(store, poll=0.2, annotator="ana")
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot)
        await pilot.press("R")
        await settle(pilot)
        await pilot.press("7", "1", "1")
        await settle(pilot)
        said = [n.message for n in app._notifications]
        assert any("there is no candidate 7: this list has 3 (1-3)" in m for m in said)
        assert any("candidate 1 is placed already" in m for m in said)


def seed_prompt_request(store, run_id=9):
    """A prompt-task request as engine.prompt.people writes it: three prompts with what each does (`auto`)."""
    from engine import rankings

    examples = [
        ("an utterly charming, funny and moving film that never once condescends to its young audience", "great"),
        ("a tedious, overlong mess", "terrible"),
    ]
    said = (["great", "terrible"], ["terrible", "terrible"], ["terrible", "great"])
    cands = [
        dict(
            text=text,
            tokens=[" " + w for w in text.split()],
            rewards=[0.5 + 0.05 * i for i, _ in enumerate(text.split())],
            auto=dict(
                score=score,
                accuracy=acc,
                examples=32,
                verdicts=[dict(text=t, gold=g, said=s) for (t, g), s in zip(examples, words)],
            ),
        )
        for text, score, acc, words in zip(
            ("great film review", "bored empty most", "rated honestly"), (112.4, -31.0, 8.25), (0.84, 0.5, 0.53), said
        )
    ]
    context = "toy-sentiment: a prompt that makes the task LM answer terrible / great\n" + "\n".join(
        f"  {t!r} -> {g}" for t, g in examples
    )
    return rankings.ask(store, run_id, 1, "prompt", [rankings.Request(context, cands, {})])


def shown(app, colour: bool = False) -> str:
    """The rank screen's candidates as text at the body's width: plain, or with a 256-colour terminal's codes."""
    import io

    from rich.console import Console

    out = io.StringIO()
    body = app.screen.query_one("#rank-candidates", Static)
    console = Console(
        file=out, width=body.content_region.width, color_system="256" if colour else None, force_terminal=colour
    )
    console.print(body.content)
    return out.getvalue()


async def test_v_shows_what_each_prompt_does_and_hides_it_again(store, monkeypatch):
    """A prompt-task request: the candidates show as raw token strings until v; then under each its automatic
    score and the task LM's verdict (✓/✗, the word it picks, the gold one where wrong) on each shown example,
    cut to one line at 80x24 and legible without colour (NO_COLOR): the marks say right or wrong. v hides them."""
    monkeypatch.setenv("NO_COLOR", "1")
    seed_prompt_request(store)
    app = PggApp(store, poll=0.2, annotator="ana")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.action_rank(9)
        await settle(pilot)
        before = shown(app)
        assert "review" in before and "v shows what each prompt does" in before
        assert "automatic score +" not in before and "✓" not in before  # hidden until asked: docs/rankings.md
        await pilot.press("v")
        await settle(pilot)
        text = shown(app)
        assert "automatic score +112.4 · 27/32 training examples right" in text
        assert "automatic score -31.0 · 16/32 training examples right" in text
        lines = [" ".join(line.split()) for line in text.splitlines()]
        assert "✓ terrible a tedious, overlong mess" in lines  # candidate 1
        assert "✗ great (gold terrible) a tedious, overlong mess" in lines  # candidate 3
        cut = [line for line in lines if line.startswith(("✓ great an utterly", "✗ terrible (gold great) an utterly"))]
        assert len(cut) == 3 and all(line.endswith("…") for line in cut)  # one line each, at 80 columns
        plain, coloured = shown(app).splitlines(), shown(app, colour=True).splitlines()
        marked = [c for p, c in zip(plain, coloured) if p.lstrip().startswith(("✓", "✗"))]
        colour_code = re.compile(r"\x1b\[(?:\d+;)*(?:3[0-8]|9[0-7])(?:;\d+)*m")  # a foreground colour
        assert len(marked) == 6 and not any(colour_code.search(line) for line in marked)
        await pilot.press("v")
        await settle(pilot)
        assert "automatic score +" not in shown(app)
        await pilot.press("2", "enter")  # ranking works as before
        await settle(pilot)
    from engine import rankings

    assert rankings.export(store)[-1]["order"] == [1, 0, 2]


async def test_v_on_a_summarization_request_says_there_is_nothing_to_show(store):
    seed_store.seed_rankings(store, 7, 1)
    app = PggApp(store, poll=0.2, annotator="ana")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.action_rank(7)
        await settle(pilot)
        before = shown(app)
        assert "v shows" not in before
        await pilot.press("v")
        await settle(pilot)
        assert shown(app) == before
        assert any("nothing to show" in n.message and "summarize" in n.message for n in app._notifications)
