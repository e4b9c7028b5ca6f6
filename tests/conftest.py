import os
import signal
import subprocess
import sys
import time
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


def pytest_collection_modifyitems(config, items):
    """Deselect the gpu tests unless `-m` asks for them: an addopts `-m 'not gpu'` would be replaced by the
    inner loop's `-m 'not slow'` and run them on a machine without CUDA."""
    if "gpu" in (config.option.markexpr or ""):
        return
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if gpu:
        config.hook.pytest_deselected(items=gpu)
        items[:] = [item for item in items if not item.get_closest_marker("gpu")]


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL server for the session. Missing binaries skip the PostgreSQL tests on a developer's
    machine; in CI (PGG_REQUIRE_POSTGRES=1, set by .ci/run) they fail instead."""
    from pg_server import PgServer

    try:
        server = PgServer()
    except (FileNotFoundError, RuntimeError) as err:
        if os.environ.get("PGG_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL required (PGG_REQUIRE_POSTGRES=1) but not available: {err}")
        pytest.skip(f"no PostgreSQL server: {err}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def slurm_cluster():
    """A one-node Slurm cluster for the session (tests/slurm_cluster.py); skipped without slurmd and munge
    on a developer's machine, a failure in CI (PGG_REQUIRE_SLURM=1, set by .ci/run)."""
    from slurm_cluster import SlurmCluster

    try:
        cluster = SlurmCluster()
    except (FileNotFoundError, PermissionError, RuntimeError, subprocess.CalledProcessError) as err:
        if os.environ.get("PGG_REQUIRE_SLURM") == "1":
            pytest.fail(f"Slurm required (PGG_REQUIRE_SLURM=1) but not available: {err}")
        pytest.skip(f"no local Slurm cluster: {err}")
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)
    yield cluster
    if old is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = old
    cluster.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, db):
    """A fresh store on each backend: a SQLite file, and a new database on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return db
    return request.getfixturevalue("pg_server").fresh_database()


@pytest.fixture
def db(tmp_path, monkeypatch):
    """A fresh store path in a temporary folder, with run folders beside it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PGG_RUNS_DIR", str(tmp_path / "runs"))
    return str(tmp_path / "experiments.db")


def kill_at_step(store, db: str, run_id: int, step: int) -> int:
    """Train run_id in a process of its own, SIGKILL it once it reports `step`, and queue its retry.

    Returns the id of the retry, which resumes from the killed run's last checkpoint.
    """
    proc = subprocess.Popen([sys.executable, "-m", "engine", "run", "--db", db, "--run-id", str(run_id)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while store.get(run_id).step < step:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the run never reached the step"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store.end(run_id, "lost", "killed by the test")
    (retry,) = store.retry([run_id])
    return retry
