"""Fixtures of the suite. Helper functions and constants live in tests/support/ (`from support.X import ...`)."""

import os
import subprocess

import pytest

from support.paths import ROOT, SHARED_DATA, STANDIN  # noqa: F401  (benchmarks/claims.py imports conftest.STANDIN)

# No test may reach the network: the hub is unreachable in CI, and a retrying download would only be slow.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.pop("PGG_DB", None)
os.environ.pop("CUDA_VISIBLE_DEVICES", None)


def pytest_collection_modifyitems(config, items):
    """Deselect the gpu tests unless `-m` asks for them: an addopts `-m 'not gpu'` would be replaced by the
    inner loop's `-m 'not slow'` and run them on a machine without CUDA. The Slurm tests go to one xdist
    worker: each worker would otherwise start a cluster of its own on the same node."""
    for item in items:
        if "slurm_cluster" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("slurm"))
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


@pytest.fixture
def seeded(db, monkeypatch):
    """The app tests' store (tests/support/seed_store.py: runs in every state) at its fixed clock."""
    from pgg_tui.core import views as app_data
    from support import seed_store

    monkeypatch.setattr(app_data, "now", lambda: seed_store.T0 + 500)
    return seed_store.seed("experiments.db")


@pytest.fixture
def store(seeded, monkeypatch):
    """The seeded store for pilot tests, with the app's worker start stubbed: no test starts a real worker."""
    monkeypatch.setattr("pgg_tui.app.ensure_worker", lambda st, *args: "worker started (test)")
    monkeypatch.setattr("pgg_tui.screens.queue.ensure_worker", lambda st, *args: "worker started (test)")
    return seeded
