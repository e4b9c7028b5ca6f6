"""Each method's configuration chosen on seeds 0-4 (mean dev/top_score), its test/score reported on seeds 5-9.

The synthetic preferences (benchmarks/synthetic_preferences.py) ignore the task's examples, so a prompt's dev
and test scores are one number and `pgg compare`'s choice on validation is a choice on the reported test mean.
Splitting the seeds removes that bias. docs/findings.md ("chosen on seeds 0-4, tested on 5-9"):

    python benchmarks/seed_split_selection.py experiments.db
"""

from __future__ import annotations

import collections
import json
import sqlite3
import statistics
import sys

from scipy import stats

SWEPT_ONLY = ("scorer", "max_queries", "max_steps", "query_unit")  # the same for every configuration


def main(db: str) -> None:
    con = sqlite3.connect(db)
    rows = con.execute("SELECT method, seed, overrides, results FROM run WHERE status = 'done' AND task = 'prompt'")
    by: dict[tuple[str, str], dict[str, dict[int, tuple[float, float]]]] = collections.defaultdict(
        lambda: collections.defaultdict(dict)
    )
    for method, seed, overrides, results in rows:
        o, r = json.loads(overrides), json.loads(results)
        if "test/score" not in r or r.get("dev/top_score") is None:
            continue  # not a synthetic-preference run, or recorded before runs stored dev/top_score
        kind = o.get("scorer", "").split(":")[-1]
        config = " ".join(f"{k}={v}" for k, v in sorted(o.items()) if k not in SWEPT_ONLY)
        by[(kind, method)][config][seed] = (r["dev/top_score"], r["test/score"])
    print("preference\tmethod\tchosen on seeds 0-4\tconfigs\ttest on seeds 5-9: mean ± std\t95% CI (t)")
    for (kind, method), configs in sorted(by.items()):
        complete = {c: v for c, v in configs.items() if all(s in v for s in range(10))}
        if not complete:
            continue
        best = max(complete, key=lambda c: statistics.mean(complete[c][s][0] for s in range(5)))
        test = [complete[best][s][1] for s in range(5, 10)]
        mean, sd = statistics.mean(test), statistics.stdev(test)
        half = stats.t.ppf(0.975, len(test) - 1) * sd / len(test) ** 0.5
        print(
            f"{kind}\t{method}\t{best}\t{len(complete)}\t{mean:.2f} ± {sd:.2f}\t[{mean - half:.2f}, {mean + half:.2f}]"
        )


if __name__ == "__main__":
    main(sys.argv[1])
