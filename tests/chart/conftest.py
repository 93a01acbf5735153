from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from support import CHART


class Render:
    def __init__(self, helm: str) -> None:
        self.helm = helm

    def run(self, *args: str, values: dict | None = None, tmp: Path | None = None) -> subprocess.CompletedProcess[str]:
        argv = [self.helm, *args]
        if values is not None:
            assert tmp is not None
            path = tmp / f"values-{abs(hash(str(values)))}.yaml"
            path.write_text(yaml.safe_dump(values))
            argv += ["-f", str(path)]
        return subprocess.run(argv, capture_output=True, text=True)

    def template(self, values: dict | None = None, tmp: Path | None = None, *extra: str) -> list[dict]:
        out = self.run("template", "rel", str(CHART), "--namespace", "etl", *extra, values=values, tmp=tmp)
        assert out.returncode == 0, out.stderr
        return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="session")
def render(helm: str) -> Render:
    return Render(helm)
