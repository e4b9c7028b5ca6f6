"""Waiting on another process or thread without a fixed sleep."""

import time


def wait_for(pred, timeout=30.0, what="condition"):
    """Poll `pred` every 50 ms until it returns something truthy (returned), or fail naming `what`."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
