"""Sweeps: grids of settings per method, times seeds and dataset seeds, queued as one group.

`--set agg=avg,max reward_lr=1e-3,3e-3` is a grid (the cartesian product of the listed values; `\\,` is a
comma inside a value); a sweep file names one grid per method, so a whole comparison is one command:

    name = "token vs sequence, 200k queries"
    [pgg]
    agg = ["avg", "max"]
    reward_lr = [1e-3, 3e-3]
    [seq-reinforce]
    policy_lr = [1e-3, 3e-3, 1e-2, 3e-2]

Random search: with `--samples N` (or `samples = N` in a method's table) each method gets N configurations
drawn from its settings instead of the whole grid: a list is a uniform choice, `lo:hi` a range (integers:
uniform over lo..hi; numbers: log-uniform when lo > 0, else uniform). The draw is fixed by the sweep's
`sample_seed`, so the recorded sweep re-creates its configurations; every method gets the same N (equal tuning).

Every grid point is validated before anything is written, and every problem is reported at once.
Stdlib + the registry only: the CLI and the app import this module.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import ConfigError
from engine.registry import RunSpec, get_task, plan_errors, plan_runs

CONFIRM_ABOVE = 1000  # a sweep of more runs than this needs --yes
UNESCAPED_COMMA = re.compile(r"(?<!\\),")


@dataclass
class Sweep:
    """What a sweep is made of: a name, and per method its grid (setting -> values to try)."""

    name: str = ""
    grids: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # method -> setting -> values
    samples: dict[str, int] = field(default_factory=dict)  # method -> configurations drawn (random search)
    sample_seed: int = 0

    def configurations(self, method: str) -> list[dict[str, str]]:
        n = self.samples.get(method, 0)
        if n:
            return sample_points(self.grids[method], n, random.Random(f"{self.sample_seed}:{method}"))
        ranged = [k for k, vs in self.grids[method].items() if any(is_range(v) for v in vs)]
        if ranged:
            raise ConfigError(
                f"{ranged[0]}={self.grids[method][ranged[0]][0]} is a range: draw from it with "
                "--samples N (random search), or list values"
            )
        return grid_points(self.grids[method])

    def to_json(self) -> str:
        if not self.samples:
            return json.dumps(self.grids, sort_keys=True)
        return json.dumps(dict(grids=self.grids, samples=self.samples, sample_seed=self.sample_seed), sort_keys=True)


RANGE = re.compile(r"^\s*(-?[0-9.eE+-]+)\s*:\s*(-?[0-9.eE+-]+)\s*$")


def is_range(value: str) -> bool:
    return RANGE.match(value) is not None


def draw(value: str, rng: random.Random) -> str:
    """One value from `lo:hi` (integers uniform, positive numbers log-uniform, else uniform)."""
    m = RANGE.match(value)
    if m is None:
        return value
    lo_s, hi_s = m.groups()
    try:
        if re.fullmatch(r"-?\d+", lo_s) and re.fullmatch(r"-?\d+", hi_s):
            lo_i, hi_i = int(lo_s), int(hi_s)
            if lo_i > hi_i:
                raise ValueError
            return str(rng.randint(lo_i, hi_i))
        lo, hi = float(lo_s), float(hi_s)
    except ValueError:
        raise ConfigError(f"bad range {value!r}: expected lo:hi with lo <= hi, e.g. 1e-4:1e-2") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ConfigError(f"bad range {value!r}: expected lo:hi with lo <= hi, e.g. 1e-4:1e-2")
    x = math.exp(rng.uniform(math.log(lo), math.log(hi))) if lo > 0 else rng.uniform(lo, hi)
    return f"{x:.3g}"


def sample_points(grid: dict[str, list[str]], n: int, rng: random.Random) -> list[dict[str, str]]:
    """n configurations drawn from the grid's settings (a list: a uniform choice; a range: `draw`)."""
    return [{k: draw(rng.choice(vs), rng) for k, vs in grid.items()} for _ in range(n)]


def split_values(value: str) -> list[str]:
    """'1e-3,3e-3' -> ['1e-3', '3e-3']; an escaped comma stays in its value."""
    return [v.replace("\\,", ",").strip() for v in UNESCAPED_COMMA.split(value)]


def parse_grid(pairs: list[str]) -> dict[str, list[str]]:
    """`["agg=avg,max", "top_k=64"]` -> {"agg": ["avg", "max"], "top_k": ["64"]}."""
    grid: dict[str, list[str]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key or not key.replace("_", "").isalnum():
            raise ConfigError(f"malformed --set {pair!r}: expected key=value or key=v1,v2,..., e.g. --set agg=avg,max")
        values = split_values(value)
        if len(values) > 1 and any(not v for v in values):
            raise ConfigError(f"--set {pair!r}: an empty value in the list")
        if key in grid:
            raise ConfigError(f"--set {key} given twice; list its values once: {key}=a,b")
        grid[key] = list(dict.fromkeys(values))  # a value listed twice is one configuration
    return grid


def grid_points(grid: dict[str, list[str]]) -> list[dict[str, str]]:
    """Every combination of the grid's values, in the order the settings were given."""
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def _toml_value(method: str, key: str, value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    out = []
    for v in values:
        if isinstance(v, bool):
            out.append("true" if v else "false")
        elif isinstance(v, (int, float, str)):
            out.append(str(v))
        else:
            raise ConfigError(f"sweep file: [{method}] {key}: values are numbers, strings or true/false")
    if not out:
        raise ConfigError(f"sweep file: [{method}] {key} = []: list at least one value")
    return list(dict.fromkeys(out))


def load_sweep(path: str | Path) -> Sweep:
    """A sweep file (TOML): `name`, then one table per method holding its grid."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"sweep file {str(path)!r} not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"sweep file {str(path)!r}: cannot read it ({err})") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"sweep file {str(path)!r} is not valid TOML: {err}") from None
    name = data.pop("name", "")
    if not isinstance(name, str):
        raise ConfigError("sweep file: name must be a string")
    sample_seed = data.pop("sample_seed", 0)
    if not isinstance(sample_seed, int) or isinstance(sample_seed, bool):
        raise ConfigError("sweep file: sample_seed must be an integer")
    grids: dict[str, dict[str, list[str]]] = {}
    samples: dict[str, int] = {}
    for method, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(f"sweep file: {method} = ... is not a method table; write [{method}] and its grid below")
        n = table.pop("samples", 0)
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ConfigError(f"sweep file: [{method}] samples must be a whole number of configurations")
        if n:
            samples[method] = n
        grids[method] = {key: _toml_value(method, key, value) for key, value in table.items()}
    if not grids:
        raise ConfigError(f"sweep file {str(path)!r} names no method: add a [pgg] table (and one per baseline)")
    return Sweep(name, grids, samples, sample_seed)


def plan_sweep(
    task: str,
    dataset: str,
    sweep: Sweep,
    seeds: str = "0",
    dataset_seeds: str = "0",
    preset: str = "paper",
    data_dir: str = "",
    common: list[str] | None = None,
) -> list[RunSpec]:
    """Every run of the sweep: per method, per grid point, per (dataset seed, seed). All problems at once.

    `common`: plain `key=value` settings for every method (a grid may not repeat them)."""
    errors = sweep_errors(task, dataset, sweep, seeds, dataset_seeds, preset, data_dir, common)
    if errors:
        raise ConfigError("; ".join(errors))
    specs: list[RunSpec] = []
    for method in sweep.grids:
        for point in sweep.configurations(method):
            specs += plan_runs(
                task,
                dataset,
                method,
                seeds,
                dataset_seeds,
                preset,
                data_dir,
                [*(common or []), *(f"{k}={v}" for k, v in point.items())],
            )
    return specs


def sweep_errors(
    task: str,
    dataset: str,
    sweep: Sweep,
    seeds: str = "0",
    dataset_seeds: str = "0",
    preset: str = "paper",
    data_dir: str = "",
    common: list[str] | None = None,
) -> list[str]:
    """Every problem of a sweep, each once (the same bad value in many grid points is one line)."""
    errors: list[str] = []
    try:
        spec = get_task(task)
    except ConfigError as err:
        return [str(err)]
    common_keys = {p.partition("=")[0].strip() for p in common or []}
    for method, grid in sweep.grids.items():
        if method not in spec.methods:
            errors.append(f"unknown method {method!r} for task {task}; choose one of: {', '.join(spec.methods)}")
            continue
        for key in grid:
            if key in common_keys:
                errors.append(f"{key} is both a plain --set and in the {method} grid; give it once")
        try:
            points = sweep.configurations(method)
        except ConfigError as err:
            errors.append(str(err))
            continue
        for point in points:
            sets = [*(common or []), *(f"{k}={v}" for k, v in point.items())]
            for line in plan_errors(task, dataset, method, seeds, dataset_seeds, preset, data_dir, sets):
                if line not in errors:
                    errors.append(line)
    return errors
