"""What produced a run: pgg's git commit (and whether the checkout had uncommitted changes) and the
versions of the packages the numbers depend on. Recorded with every run, so a result can be traced."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

PACKAGES = ("pgg", "torch", "transformers", "tokenizers", "datasets", "numpy")


def git_state(root: Path | None = None) -> str:
    """'abc1234' or 'abc1234+dirty' for the checkout pgg runs from; '' when it is not a git checkout."""
    root = root or Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return ""
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def environment() -> dict[str, str]:
    """env/* entries for a run's results: git state, Python and package versions."""
    env = {"env/git": git_state() or "not a git checkout", "env/python": platform.python_version()}
    for name in PACKAGES:
        try:
            env[f"env/{name}"] = metadata.version(name)
        except metadata.PackageNotFoundError:
            env[f"env/{name}"] = "not installed"
    return env
