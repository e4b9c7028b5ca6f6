"""How a run reads to a person, the same in the CLI and the app: its variant, headline metric and durations."""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from engine.registry import TASKS

TAU = "reward/tau"  # grounding quality of the last reward phase (pgg runs)
CHANCE = "reward/chance_loss"  # recorded by every reward phase, with or without a tau


def variant_label(method: str, overrides: str, leave_out: Mapping[str, Any] | None = None) -> str:
    """A method with the settings the user changed, e.g. 'pgg agg=min' (overrides: the run's JSON), less
    those in `leave_out` (settings every listed row shares, said once below the listing)."""
    extra = json.loads(overrides or "{}")
    return " ".join(
        [method] + [f"{k}={v}" for k, v in sorted(extra.items()) if not leave_out or leave_out.get(k, object()) != v]
    )


def shared_overrides(overrides: Iterable[str]) -> dict[str, Any]:
    """The settings (key and value) that every one of these runs' overrides holds: a sweep's fixed part."""
    common: dict[str, Any] | None = None
    for o in overrides:
        extra = json.loads(o or "{}")
        common = dict(extra) if common is None else {k: v for k, v in common.items() if extra.get(k, object()) == v}
    return common or {}


def override_args(overrides: str) -> list[str]:
    """The run's overrides as the `key=value` words `--set` and the queue form take back."""
    return [f"{k}={v}" for k, v in json.loads(overrides or "{}").items()]


def headline_metric(task: str) -> str:
    """The one result a task is judged by (test accuracy, ROUGE-1); '' for a task this pgg does not know."""
    return TASKS[task].result_metric if task in TASKS else ""


def second_metric(task: str) -> str:
    """The result shown beside the headline ('' for a task this pgg does not know)."""
    return TASKS[task].second_metric if task in TASKS else ""


def number(results: Mapping[str, Any], name: str) -> float | None:
    """A finite numeric result, or None (absent, a list, a bool, NaN)."""
    value = results.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def headline(task: str, results: Mapping[str, Any]) -> tuple[str, float] | None:
    """(metric name, value) of a finished run's headline result, if it has one: the task's, else its test
    score (a run scored by a custom `scorer=`, such as the synthetic preferences, has no accuracy)."""
    for name in (headline_metric(task), "test/score"):
        value = number(results, name)
        if value is not None:
            return name, value
    return None


SHORT_NAMES = {
    "test/accuracy": "acc",
    "test/rouge1": "R-1",
    "test/score": "test",
    "dev/score": "dev",
    "val/rouge1": "vR-1",  # validation ROUGE-1, the unit of the test R-1 a summarization run ends with
    "val/score": "R1+2R2+L",  # the original's validation score: R1 + 2·R2 + RLsum, not a percentage
    "train/score": "train",
}


def short_metric(name: str) -> str:
    """A metric's name in a narrow cell: 'acc 92.40' says what 92.40 is."""
    return SHORT_NAMES.get(name, name.rsplit("/", 1)[-1])


PERCENT = ("test/accuracy", "test/rouge", "test/meteor")  # reported x 100 by the engine


def fmt_metric(name: str, value: float) -> str:
    """A value with its unit: accuracies and ROUGE/METEOR are percentages, τ a signed correlation."""
    if name.startswith(PERCENT):
        return f"{value:.2f}%"
    if name == TAU:
        return f"{value:+.2f}"
    if isinstance(value, bool):
        return str(value).lower()
    if float(value).is_integer() or abs(value) >= 1e4:  # counts and large sums: 51,584, never 5.158e+04
        return f"{value:,.0f}"
    return f"{value:.4g}"


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Run-written text made safe to show: control characters other than tab and newline become visible
    escapes (\\x1b...), so a run that prints OSC 0/52 sequences (window title, clipboard write) or a
    carriage return cannot reach the reader's terminal through `pgg logs`, `pgg show` or the app."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def repeatability(device: str, threads: Any) -> str:
    """What a rerun of the same seed and config gives, from where the run computed (env/device, env/threads)."""
    if device.startswith("cuda"):
        return (
            f"approximately: trained on {device}, whose kernels are not deterministic; a rerun differs "
            "in the last digits, and a long run's trajectory may drift"
        )
    return (
        f"bit for bit on a CPU with the same kernels, {device}, at threads={threads} (with pgg's commit and "
        "the package versions above); within a tolerance on other CPUs"
    )


def tau_by_phase(chance_phases: Iterable[str], taus: Iterable[tuple[str, float]]) -> dict[str, float | None]:
    """The grounding tau of each reward phase, in order, from the phases that recorded their chance level and
    the (phase, tau) rows: None for a phase with nothing to rank (its chance level but no tau)."""
    out: dict[str, float | None] = dict.fromkeys(chance_phases)
    out.update(taus)
    return out


def duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return ""
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


def short_location(location: str, width: int = 32) -> str:
    """A store's location in a narrow header: ~ for the home folder, and a long path cut to its last parts
    ('…/proj/experiments.db'); a URL or a short path whole."""
    home = os.path.expanduser("~")
    if location.startswith(home + os.sep):
        location = "~" + location[len(home) :]
    if len(location) <= width or "://" in location:
        return location
    parts = location.split(os.sep)
    out = parts[-1]
    for part in reversed(parts[:-1]):
        if len(part) + len(out) + 3 > width:
            break
        out = part + os.sep + out
    return "…" + os.sep + out


def last_line(error: str | None) -> str:
    """A failure's reason in one line: the last line of its message or traceback."""
    return error.strip().splitlines()[-1] if error and error.strip() else ""


def config_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(setting, value in a, value in b) for every setting the two configs do not share, in a's order."""
    missing = object()
    keys = list(a) + [k for k in b if k not in a]
    out = []
    for k in keys:
        va, vb = a.get(k, missing), b.get(k, missing)
        if va != vb:
            out.append((k, None if va is missing else va, None if vb is missing else vb))
    return out


def run_diff(
    config_a: Mapping[str, Any], config_b: Mapping[str, Any], results_a: Mapping[str, Any], results_b: Mapping[str, Any]
) -> list[tuple[str, str, str, str]]:
    """(section, setting, a, b) rows: the config settings two runs differ in, then their differing scalar
    results (numbers to 4 significant digits). The CLI's `pgg diff` and the app's diff show these."""

    def cell(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    def result(k: str, v: Any) -> str:  # a count reads 21,180, never 2.118e+04 (fmt_metric's rule)
        return fmt_metric(k, v) if isinstance(v, (int, float)) and not isinstance(v, bool) else cell(v)

    rows = [("config", k, cell(x), cell(y)) for k, x, y in config_diff(config_a, config_b)]
    same = results_a.get("test_outputs_sha")
    if same and same == results_b.get("test_outputs_sha"):  # said first: their test numbers cannot differ
        rows.append(("result", "test outputs", "identical to the other run's", "identical to the other run's"))
    rows += [
        ("result", k, result(k, x), result(k, y))
        for k, x, y in config_diff(results_a, results_b)
        if not isinstance(x, (list, dict)) and not isinstance(y, (list, dict))
    ]
    return rows


def run_label(name: str, tags: Sequence[str]) -> str:
    """A run's name and tags as one short label: `ablation-a #lr #sweep3`."""
    return " ".join([name, *(f"#{t}" for t in tags)]).strip()


def gpu_reading(g: Mapping[str, float]) -> str:
    """`gpu0 87% 31/80G`: one GPU's utilisation and memory, from a worker's reading."""
    return f"gpu{int(g['index'])} {g['util']:.0f}% {g['mem_used'] / 1024:.0f}/{g['mem_total'] / 1024:.0f}G"


def usage_of(resources: str | None) -> dict[str, float]:
    """A run's last resource reading (engine.resources: cpu %, rss_gb, gpu_gb), {} if none or unreadable."""
    try:
        got = json.loads(resources or "{}")
    except ValueError:
        return {}
    return {k: float(v) for k, v in got.items() if isinstance(v, (int, float))} if isinstance(got, dict) else {}


def usage_cell(resources: str | None) -> str:
    """`98% 1.2G`, and ` g3.1G` on a GPU: a run's CPU (of one core) and memory, in a narrow cell."""
    u = usage_of(resources)
    parts = [f"{u['cpu']:.0f}%"] if "cpu" in u else []
    if "rss_gb" in u:
        parts.append(f"{u['rss_gb']:.1f}G")
    if "gpu_gb" in u:
        parts.append(f"g{u['gpu_gb']:.1f}G")
    return " ".join(parts)


def usage_text(resources: str | None) -> str:
    """`CPU 98% of a core · memory 1.20 GB · GPU memory 3.10 GB` for a header or `pgg show`."""
    u = usage_of(resources)
    parts = [f"CPU {u['cpu']:.0f}% of a core"] if "cpu" in u else []
    if "rss_gb" in u:
        parts.append(f"memory {u['rss_gb']:.2f} GB")
    if "gpu_gb" in u:
        parts.append(f"GPU memory {u['gpu_gb']:.2f} GB")
    return " · ".join(parts)


def box_load() -> str:
    """`load 1.8/2`: this machine's 1-minute load average against its cores, so a slow run explains itself."""
    try:
        one = os.getloadavg()[0]
    except OSError:  # not on this platform
        return ""
    return f"load {one:.1f}/{os.cpu_count() or 1}"


def waiting_text(n: int) -> str:
    """A run waiting for people to rank its samples (preference=human)."""
    return f"waiting for {n} ranking{'s' if n != 1 else ''}"
