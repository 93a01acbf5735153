"""A user transform for the `python:` step test (imported by name)."""


def double(frame):
    return frame.assign(v=frame["v"] * 2)
