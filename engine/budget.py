"""A query budget (`max_queries`): the one check both trainers make before they ask the preference again.

Stdlib only. The caller counts its queries in its own unit (the prompt task: (prompt, example) pairs or
prompts, `query_unit`; summarization: summaries scored) and keeps the flag in its checkpointed state.
"""

from __future__ import annotations

from typing import Any


def reached(limit: int, spent: int, already: bool, reporter: Any, step: int, unit: str, then: str) -> bool:
    """True once `spent` reaches `limit` (0: no budget). The first time, the spend at that moment is recorded
    as `budget/spent` and the log says what happens next (`then`)."""
    if not limit or already:
        return already
    if spent < limit:
        return False
    reporter.metrics(step, {"budget/spent": float(spent)})
    reporter.log(f"query budget reached: {spent:,} of max_queries={limit:,} {unit} spent at step {step}; {then}")
    return True
