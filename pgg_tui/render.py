"""Pure rendering: reward colours, tokens as rich Text, status styles. No Textual here."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

from rich.style import Style
from rich.text import Text

# A diverging scale, low reward (red) -> neutral -> high reward (blue), as xterm-256 palette indices so
# it reads the same in a 256-colour terminal over SSH as in a truecolour one. Foregrounds keep contrast.
PALETTE = (124, 160, 203, 217, 250, 152, 110, 68, 25)
FOREGROUND = ("white", "white", "black", "black", "black", "black", "black", "white", "white")
# Without colour (NO_COLOR) a terminal shows colours by their lightness, where red 124 and blue 25 look
# alike: greys from dark (low reward) to light (high reward) keep the order.
GREYS = (235, 238, 241, 244, 247, 249, 251, 253, 255)
GREY_FOREGROUND = ("white", "white", "white", "white", "black", "black", "black", "black", "black")
LOW_MARK, HIGH_MARK = "▼", "▲"  # without colour, the extreme buckets are marked

STATUS_STYLE = {
    "queued": "dim",
    "running": "bold yellow",
    "done": "green",
    "failed": "bold red",
    "cancelled": "magenta",
    "lost": "red",
    "cancelling…": "magenta",
}


MIN_HALF_SPAN = 0.05  # token rewards live in (0, 1.31) (the softplus squash): a spread below ±0.05 is noise


def scale_bounds(values: Sequence[float]) -> tuple[float, float]:
    """(lo, hi) of the colour scale: centred on the run's median token reward (neutral grey = a typical
    token), spanning the 5th to 95th percentiles (one outlier does not wash out the rest), never narrower
    than ±MIN_HALF_SPAN, so an untrained reward model's near-constant output stays near neutral."""
    vals = sorted(v for v in values if v is not None and math.isfinite(v))
    if not vals:
        return 0.0, 1.0
    mid = vals[(len(vals) - 1) // 2]
    lo = vals[int(0.05 * (len(vals) - 1))]
    hi = vals[int(math.ceil(0.95 * (len(vals) - 1)))]
    half = max(hi - mid, mid - lo, MIN_HALF_SPAN)
    return mid - half, mid + half


def bucket(x: float, lo: float, hi: float, n: int = len(PALETTE)) -> int:
    """Index 0..n-1 of x on [lo, hi]; values outside clamp to the end buckets."""
    if not math.isfinite(x):
        return n // 2
    t = (x - lo) / (hi - lo) if hi > lo else 0.5
    return min(n - 1, max(0, int(t * n)))


def bucket_style(b: int, grey: bool = False) -> Style:
    if grey:
        return Style(bgcolor=f"color({GREYS[b]})", color=GREY_FOREGROUND[b])
    return Style(bgcolor=f"color({PALETTE[b]})", color=FOREGROUND[b])


def reward_style(x: float, lo: float, hi: float, grey: bool = False) -> Style:
    return bucket_style(bucket(x, lo, hi), grey)


SEGMENT_MARK = "│"  # after a token that ends a segment (the rlhf task's segment-level rewards)


def token_text(
    tokens: Sequence[str],
    rewards: Sequence[float],
    lo: float,
    hi: float,
    cursor: int | None = None,
    markers: bool = False,
    segment_ends: Collection[int] = (),
) -> Text:
    """Tokens side by side, each on the background of its reward; the cursor token is underlined and bold.

    With markers=True (a terminal without colour) the lowest and highest buckets carry ▼ / ▲. A token whose
    index is in `segment_ends` is followed by a thin bar: where one segment's reward ends and the next begins.
    """
    text = Text()
    n = len(PALETTE)
    for i, tok in enumerate(tokens):
        shown = tok.replace("\n", "⏎")
        style = Style()
        if i < len(rewards):
            b = bucket(rewards[i], lo, hi)
            style = reward_style(rewards[i], lo, hi, grey=markers)
            if markers and b in (0, n - 1):
                shown = (LOW_MARK if b == 0 else HIGH_MARK) + shown
        if i == cursor:
            style += Style(bold=True, underline=True, reverse=not rewards)
        text.append(shown, style)
        if i in segment_ends and i < len(tokens) - 1:
            text.append(SEGMENT_MARK, "bold")
    return text


def token_cell(
    tokens: Sequence[str],
    rewards: Sequence[float],
    lo: float,
    hi: float,
    width: int,
    markers: bool = False,
    segment_ends: Collection[int] = (),
) -> Text:
    """The start of a sample, coloured token by token, cut at `width` characters (a table cell)."""
    shown: list[str] = []
    used = 0
    for tok in tokens:
        if used + len(tok) > width:
            break
        shown.append(tok.replace("\n", " "))
        used += len(tok)
    return token_text(shown, rewards[: len(shown)], lo, hi, markers=markers, segment_ends=segment_ends)


def legend(lo: float, hi: float, markers: bool = False) -> Text:
    """The scale and what its centre and ends mean: `reward 0.45 ███ ... ███ 0.65 · centre 0.55 = the run's
    median token`."""
    text = Text("reward ")
    text.append(f"{lo:.3g} ")
    for i in range(len(PALETTE)):
        mark = (LOW_MARK if i == 0 else HIGH_MARK if i == len(PALETTE) - 1 else " ") if markers else " "
        text.append(mark + " ", bucket_style(i, grey=markers))
    text.append(f" {hi:.3g}")
    text.append(
        f" · centre {(lo + hi) / 2:.3g} = the run's median token; ends: its 5th/95th percentile, at "
        f"least ±{MIN_HALF_SPAN:g}",
        "dim",
    )
    return text


def progress_cell(step: int, total: int, width: int = 8, label: str = "") -> Text:
    """`█████░░░ 60/100` for a running run; `label` says whose steps they are (`R ` a reward training's)."""
    if not total:
        return Text("")
    if not width:  # no room for a bar (80 columns): the numbers, in the bar's colour
        return Text(f"{label}{step}/{total}", "blue" if label else "green")
    frac = min(1.0, max(0.0, step / total))
    full = int(frac * width)
    text = Text("█" * full, "blue" if label else "green")
    text.append("░" * (width - full), "dim")
    text.append(f" {label}{step}/{total}")
    return text


def status_text(status: str) -> Text:
    return Text(status, STATUS_STYLE.get(status, ""))


def tau_cell(tau: float | None) -> Text:
    """Grounding quality at a glance: Kendall tau of the reward model, red near chance (|tau| < 0.2)."""
    if tau is None or tau != tau:  # no tau: not a pgg run, or its last reward phase had nothing to rank
        return Text("")
    return Text(f"{tau:+.2f}", "red" if tau < 0.2 else "yellow" if tau < 0.4 else "green")
