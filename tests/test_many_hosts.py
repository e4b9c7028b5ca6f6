"""Many hosts, one store: a worker per host, exactly-once claims across them, each run's host recorded,
stop requests that cross machines. Two hosts are played by two Worker objects in this process (their runs
are real processes); each test runs on SQLite and on a real PostgreSQL server."""

import json
import socket

import pytest

from engine.config import to_json
from engine.errors import StoreError
from engine.registry import plan_runs
from engine.scheduler import Worker, make_slots
from engine.store import Store
from pgg_tui.core.launch import stop_worker, worker_leases
from support.paths import STANDIN
from support.waiting import wait_for


@pytest.fixture
def two_hosts(store_url, monkeypatch):
    monkeypatch.setenv("STANDIN_STEPS", "6")
    monkeypatch.setenv("STANDIN_SLEEP", "0.02")
    st = Store.open(store_url)
    workers = [
        Worker(st, make_slots([], cpu_slots=2), STANDIN, poll=0.05, log=lambda m: None, host=h)
        for h in ("host-a", "host-b")
    ]
    for w in workers:
        w.acquire()
    yield st, workers
    for w in workers:
        for child in list(w.children.values()):
            if child.popen is not None:
                child.popen.kill()
                child.popen.wait()
        w.release()


def test_a_sweep_runs_once_across_two_hosts(two_hosts):
    st, (a, b) = two_hosts
    ids = st.queue(plan_runs("prompt", "toy-sentiment", seeds="0-7"), to_json)

    def step():
        a.tick()
        b.tick()  # done once every run recorded its end and its worker read its last output
        return all(r.status == "done" for r in st.runs()) and not a.children and not b.children

    wait_for(step, timeout=120, what="the sweep to finish on two hosts")
    runs = st.runs()
    assert [r.id for r in runs] == ids and all(r.attempt == 1 for r in runs)  # each claimed once, none retried
    assert {r.host for r in runs} == {"host-a", "host-b"}  # both hosts took runs
    for r in runs:
        assert sum(1 for line in st.logs(r.id) if "standin done" in line.text) == 1  # trained exactly once


def test_one_lease_per_host_and_a_stop_request_that_crosses_machines(two_hosts):
    st, (a, b) = two_hosts
    second = Worker(st, make_slots([], cpu_slots=1), STANDIN, host="host-a")
    second.pid += 1  # another process on host-a
    with pytest.raises(StoreError, match="already running on this host"):
        second.acquire()
    hosts = {lease.host for lease in worker_leases(st)}
    assert hosts == {"host-a", "host-b"}  # another host's worker is judged by its heartbeat alone
    assert stop_worker(st, host="host-b").startswith("asked the worker on host-b")
    b.tick()
    assert b._stopping and not a._stopping
    assert stop_worker(st, host="nowhere") == "no worker serves this store on nowhere"


def test_a_worker_never_adopts_another_hosts_runs(two_hosts, monkeypatch):
    st, (a, b) = two_hosts
    monkeypatch.setenv("STANDIN_STEPS", "400")
    monkeypatch.setenv("STANDIN_SLEEP", "0.05")
    st.queue(plan_runs("prompt", "toy-sentiment", seeds="0"), to_json)
    a.tick()
    (rid,) = a.children
    wait_for(lambda: st.get(rid).pid, what="the run to start")
    restarted = Worker(st, make_slots([], cpu_slots=2), STANDIN, poll=0.05, log=lambda m: None, host="host-b")
    restarted._adopt()
    assert not restarted.children  # host-a's run stays host-a's
    assert st.get(rid).host == "host-a" and st.get(rid).status == "running"
    st.request_cancel([rid])
    wait_for(lambda: (a.tick(), st.get(rid).status == "cancelled")[1], timeout=60, what="the cancel")


def test_worker_status_lists_every_host(two_hosts, capsys):
    st, _ = two_hosts
    from pgg_tui.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["worker", "status", "--json", "--db", st.url])
    data = json.loads(capsys.readouterr().out)
    assert sorted(w["host"] for w in data["workers"]) == ["host-a", "host-b"]
    assert exit_.value.code == 3 and not data["running"]  # neither is this machine's ({socket.gethostname()})
    assert socket.gethostname() not in ("host-a", "host-b")
