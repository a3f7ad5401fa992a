"""A fake Clock (sagactl.clock): ``sleep`` records the delay and moves time on instead of sleeping."""

from __future__ import annotations

from datetime import datetime, timedelta

from sagactl.models import utcnow


class FakeClock:
    """Starts at the real current time (stores may compare leases with their own clock) and
    advances only when told to or when the engine sleeps."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or utcnow()
        self.start = self.current
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return self.current

    def monotonic(self) -> float:
        return (self.current - self.start).total_seconds()

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


class StopsAfter(FakeClock):
    """A FakeClock whose ``frames``-th sleep is Ctrl-C (KeyboardInterrupt): what ends a
    ``--watch`` after that many frames."""

    def __init__(self, frames: int, start: datetime | None = None) -> None:
        super().__init__(start)
        self.frames = frames

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        if len(self.sleeps) >= self.frames:
            raise KeyboardInterrupt
