"""The app's pure functions: colour scale, token text, legend, grouping, key bar layout."""

import json

import pytest
from rich.console import Console

from engine.store import Run
from pgg_tui.core.aggregate import Stat, group_runs
from pgg_tui.core.present import duration
from pgg_tui.render import (
    GREYS,
    HIGH_MARK,
    LOW_MARK,
    MIN_HALF_SPAN,
    PALETTE,
    bucket,
    legend,
    scale_bounds,
    token_cell,
    token_text,
)
from pgg_tui.widgets.keybar import layout_keys


def test_bucket_is_monotone_and_clamps():
    lo, hi = 0.0, 1.0
    buckets = [bucket(x / 100, lo, hi) for x in range(-20, 121)]
    assert buckets == sorted(buckets)
    assert bucket(-5, lo, hi) == 0 and bucket(5, lo, hi) == len(PALETTE) - 1
    assert bucket(0.5, lo, hi) == len(PALETTE) // 2  # the neutral middle
    assert bucket(float("nan"), lo, hi) == len(PALETTE) // 2


def test_scale_bounds_ignore_outliers_and_degenerate_ranges():
    lo, hi = scale_bounds([0.5] * 98 + [-100.0, 100.0])
    assert (lo, hi) == pytest.approx((0.45, 0.55))  # all but the outliers equal: the narrowest scale around them
    lo, hi = scale_bounds([i / 100 for i in range(101)])
    assert lo == pytest.approx(0.05) and hi == pytest.approx(0.95)
    assert scale_bounds([]) == (0.0, 1.0)


def test_the_scale_is_centred_on_the_median_and_never_stretches_noise():
    """An untrained reward model gives every token ~0.5487 (the squash at 0): 0.547-0.554 filled the whole
    red-to-blue range before; now it stays near neutral grey."""
    noise = [0.547 + 0.007 * i / 99 for i in range(100)]
    lo, hi = scale_bounds(noise)
    assert (lo + hi) / 2 == pytest.approx(noise[49]) and hi - lo == pytest.approx(2 * MIN_HALF_SPAN)
    middle = len(PALETTE) // 2
    assert {bucket(x, lo, hi) for x in noise} <= {middle - 1, middle, middle + 1}
    lo, hi = scale_bounds([0.1] * 10 + [0.2] * 80 + [0.9] * 10)  # skewed: the centre is the typical token
    assert (lo + hi) / 2 == pytest.approx(0.2) and bucket(0.2, lo, hi) == middle
    assert "centre 0.2 = the run's median token" in legend(lo, hi).plain


def test_without_colour_the_greys_keep_the_order():
    assert list(GREYS) == sorted(GREYS) and len(set(GREYS)) == len(GREYS) == len(PALETTE)
    text = token_text(["a", "b", "c"], [0.0, 0.5, 1.0], 0.0, 1.0, markers=True)
    greys = [int(str(span.style.bgcolor.name)[6:-1]) for span in text.spans]
    assert greys == sorted(greys) and greys[0] < greys[-1]


def test_the_samples_list_cell_is_coloured_and_cut_at_a_token():
    cell = token_cell(["Hello", " world", " again"], [0.1, 0.5, 0.9], 0.0, 1.0, width=12)
    assert cell.plain == "Hello world" and len(cell.spans) == 2


def test_token_text_colours_each_token_in_256_colours():
    text = token_text(["a", " b", " c"], [0.0, 0.5, 1.0], 0.0, 1.0, cursor=1)
    assert text.plain == "a b c"
    styles = [span.style for span in text.spans]
    assert str(styles[0].bgcolor.name) == f"color({PALETTE[0]})"
    assert str(styles[2].bgcolor.name) == f"color({PALETTE[-1]})"
    assert styles[1].underline and styles[1].bold  # the cursor
    out = Console(color_system="256", force_terminal=True, width=80)
    with out.capture() as cap:
        out.print(text)
    assert "\x1b[" in cap.get() and "48;5;" in cap.get()  # 256-colour backgrounds, no truecolour needed


def test_markers_without_colour():
    text = token_text(["lo", "mid", "hi"], [0.0, 0.5, 1.0], 0.0, 1.0, markers=True)
    assert text.plain == f"{LOW_MARK}lo mid{HIGH_MARK}hi".replace(" ", "")
    assert LOW_MARK in legend(0, 1, markers=True).plain and "0 " in legend(0, 1).plain


def test_tokens_without_rewards_render_plain():
    text = token_text(["x", "y"], [], 0, 1, cursor=0)
    assert text.plain == "xy" and text.spans[0].style.reverse


def test_duration():
    assert [duration(x) for x in (5, 65, 3700, None, -1)] == ["5s", "1m05s", "1h01m", "", ""]


def test_stat_and_grouping():
    s = Stat([90.0, 92.0, 94.0])
    assert (s.mean, s.std, s.n) == (92.0, 2.0, 3)
    assert s.format() == "92.00 ± 2.00 (3)" and s.format(1, paper=True) == "92.0 (2.0)"
    runs = [
        Run(
            id=i,
            group_id="g",
            task="prompt",
            dataset="sst-2",
            method="pgg",
            seed=i,
            config="{}",
            overrides=o,
            status=st,
            results=json.dumps({"test/accuracy": 90.0 + i}),
        )
        for i, (o, st) in enumerate([("{}", "done"), ("{}", "done"), ('{"agg": "min"}', "done"), ("{}", "failed")])
    ]
    groups = group_runs(runs)
    assert {g.variant: g.stats["test/accuracy"].n for g in groups} == {"pgg": 2, "pgg agg=min": 1}


def test_key_bar_wraps_and_keeps_every_key():
    pairs = [(f"k{i}", f"action{i}") for i in range(12)]
    text = layout_keys(pairs, 40)
    lines = text.plain.split("\n")
    assert all(len(line) <= 40 for line in lines) and len(lines) > 1
    assert all(f"k{i} action{i}" in text.plain for i in range(12))


def test_segment_ends_show_as_bars_between_tokens():
    """The rlhf task's segment-level rewards: a bar after each token that ends a segment, never after the last."""
    from pgg_tui.render import SEGMENT_MARK, token_cell, token_text

    tokens, rewards = ["a", "b", "c", "d"], [0.1, 0.2, 0.3, 0.4]
    assert token_text(tokens, rewards, 0.0, 1.0, segment_ends={1, 3}).plain == f"ab{SEGMENT_MARK}cd"
    assert token_text(tokens, rewards, 0.0, 1.0).plain == "abcd"
    assert token_cell(tokens, rewards, 0.0, 1.0, 3, segment_ends={0}).plain == f"a{SEGMENT_MARK}bc"
