import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# ../shared beside the checkout (CI); PGG_FEWSHOT points elsewhere (a machine that has only the repo)
SHARED_DATA = Path(os.environ.get("PGG_FEWSHOT", ROOT.parent / "shared" / "data" / "fewshot"))
STANDIN = f"{sys.executable} {ROOT / 'tests' / 'standin.py'} run --db {{db}} --run-id {{run_id}}"

# No test may reach the network: the hub is unreachable in CI, and a retrying download would only be slow.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.pop("PGG_DB", None)
os.environ.pop("CUDA_VISIBLE_DEVICES", None)


@pytest.fixture
def db(tmp_path, monkeypatch):
    """A fresh store path in a temporary folder, with run folders beside it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PGG_RUNS_DIR", str(tmp_path / "runs"))
    return str(tmp_path / "experiments.db")
