"""The time localcloud's emulations see: wall-clock time plus whatever the caller advanced it by."""

from __future__ import annotations

import bisect
import threading
import time
from datetime import UTC, datetime


class Clock:
    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()
        # (wall-clock time of an advance, offset from then on): what this clock read at a past wall-clock time.
        self._history: list[tuple[float, float]] = []

    def now(self) -> float:
        """Epoch seconds."""
        return time.time() + self._offset

    @property
    def offset(self) -> float:
        """How far the caller has advanced this clock past wall-clock time, in seconds."""
        return self._offset

    def at_wall_time(self, wall: float) -> float:
        """What this clock read when the wall clock read `wall` (epoch seconds): moto stamps what it creates with
        wall-clock time, and localcloud's clock may have been advanced since."""
        index = bisect.bisect_right(self._history, (wall, float("inf")))
        return wall + (self._history[index - 1][1] if index else 0.0)

    def now_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now(), UTC)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds
            self._history.append((time.time(), self._offset))


def iso(epoch: float, *, millis: bool = False) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    if millis:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
