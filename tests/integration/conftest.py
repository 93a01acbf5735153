from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(params=["postgres", "sqlite"])
def db_url(request, tmp_path: Path) -> str:
    """Each load-mode test runs on PostgreSQL (COPY path) and SQLite (generic path)."""
    if request.param == "postgres":
        return request.getfixturevalue("pg_url")
    return f"sqlite:///{tmp_path / 'test.db'}"
