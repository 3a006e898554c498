"""The one source of 'now'. Everything takes a Clock, so tests and the demo run days in seconds."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from storage.tz import SHANGHAI, to_shanghai


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(SHANGHAI)


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime) -> None:
        self._now = to_shanghai(start) if start.tzinfo else start.replace(tzinfo=SHANGHAI)

    def now(self) -> datetime:
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = to_shanghai(moment) if moment.tzinfo else moment.replace(tzinfo=SHANGHAI)

    def advance(self, **delta: float) -> datetime:
        self._now += timedelta(**delta)
        return self._now
