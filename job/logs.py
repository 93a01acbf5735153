"""Structured logs: one JSON object per line on stdout, as log collectors expect."""
from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, TextIO


class Log:
    def __init__(self, stream: TextIO | None = None, **context: Any) -> None:
        self.stream = stream or sys.stdout
        self.context = context

    def _emit(self, level: str, event: str, fields: dict[str, Any]) -> None:
        record = {"ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "level": level, "event": event}
        record.update(self.context)
        record.update(fields)
        self.stream.write(json.dumps(record, default=str) + "\n")
        self.stream.flush()

    def info(self, event: str, **fields: Any) -> None:
        self._emit("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._emit("error", event, fields)

    @staticmethod
    def every(seconds: float) -> Callable[[], bool]:
        """A callable that answers True at most once per SECONDS (for progress lines)."""
        last = [time.monotonic()]

        def due() -> bool:
            now = time.monotonic()
            if now - last[0] >= seconds:
                last[0] = now
                return True
            return False

        return due
