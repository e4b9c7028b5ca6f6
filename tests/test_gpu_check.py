"""benchmarks/gpu_check.sh, the one script a GPU box runs, resolves every step here (no GPU, no training):
its scripts parse their options, the CUDA tests collect, the paper-preset run's settings validate."""

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_resolves_every_step(tmp_path):
    r = subprocess.run(
        ["bash", "benchmarks/gpu_check.sh", "--dry-run", "--wheel", str(tmp_path / "no.whl")],
        cwd=ROOT,
        env={**os.environ, "OUT": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    rows = [line for line in r.stdout.splitlines() if line.startswith("| ") and not line.startswith("| step")]
    assert len(rows) == 5, r.stdout + r.stderr
    ok = [row for row in rows if "| ok |" in row]
    assert len(ok) == 4 and "4 tests collected" in ok[0] and "settings valid" in ok[3], r.stdout
    # the real-LM step checks its wheel: a missing one fails the dry run, with its log named
    assert r.returncode == 1 and "real LM" in rows[4] and "FAILED" in rows[4]
