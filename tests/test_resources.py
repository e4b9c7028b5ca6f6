"""What a run's process uses (engine.resources): read by the reporter, kept on the run's row, said by `pgg show`."""

import json
import time

from engine.resources import Usage, rss_bytes
from engine.store import Store
from support.cli import pgg


def test_a_reading_measures_this_process():
    w0, c0 = time.monotonic(), time.process_time()
    usage = Usage()
    assert usage.read(every=60.0) is None  # too soon after the last: a share over a short window is noise
    while time.process_time() - c0 < 0.3:  # one core busy (a loaded box gives it less than all of it)
        pass
    got = usage.read()
    share = 100 * (time.process_time() - c0) / (time.monotonic() - w0)
    assert got is not None and got["cpu"] > 5 and abs(got["cpu"] - share) < 0.2 * share
    held = bytearray(64 * 1024**2)  # resident memory follows what the process holds
    assert rss_bytes() > 64 * 1024**2 and abs(got["rss_gb"] - rss_bytes() / 1024**3) < 0.2
    assert "gpu_gb" not in got  # no CUDA in this process
    del held


def test_the_reporter_keeps_the_reading_on_the_runs_row_and_show_says_it(db, monkeypatch):
    from engine import report
    from engine.config import to_json
    from engine.registry import plan_runs

    monkeypatch.setattr(report, "RESOURCES_EVERY", 0.0)
    st = Store.open(db)
    (rid,) = st.queue(plan_runs("prompt", "toy-sentiment"), to_json)
    rep = report.StoreReporter(st, rid, interval=3600)
    rep.metrics(0, {"x": 1.0})
    rep.flush()
    reading = json.loads(st.get(rid).resources or "{}")
    assert reading["rss_gb"] > 0.05 and "cpu" in reading  # a Python with torch loaded holds more than 50 MB
    rep.close()
    shown = pgg("show", str(rid), "--db", db)
    assert shown.exit_code == 0 and "uses      CPU " in shown.output and "(its last reading)" in shown.output
    as_json = json.loads(pgg("show", str(rid), "--db", db, "--json").output)
    assert as_json["resources"]["rss_gb"] == reading["rss_gb"]
