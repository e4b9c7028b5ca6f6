"""Where the tests find the checkout, the shared few-shot data and the stand-in trainer."""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# ../shared beside the checkout (CI); PGG_FEWSHOT points elsewhere (a machine that has only the repo)
SHARED_DATA = Path(os.environ.get("PGG_FEWSHOT", ROOT.parent / "shared" / "data" / "fewshot"))
# the worker's run command for a stand-in run (tests/standin.py): the real scheduling, a fake training
STANDIN = f"{sys.executable} {ROOT / 'tests' / 'standin.py'} run --db {{db}} --run-id {{run_id}}"
