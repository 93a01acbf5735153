"""User transforms for tests, loaded by `python:` steps (tests/ is on the path)."""
import time


def double(frame):
    return frame.assign(v=frame["v"] * 2)


def slow(frame):
    """Hold each chunk for a moment, so a run is still going when a test needs it to be."""
    time.sleep(0.5)
    return frame


def explode(frame):
    """A user step with a bug: it raises on real input."""
    raise ValueError(f"cannot handle {len(frame)} rows")
