"""Clocks for the simulator: the one that drives workflows, injectable for tests.

Workflow state is a pure function of "now", so the clock is the only thing that
moves an upgrade forward. Nothing ticks in the background: a thousand idle
clusters cost nothing until someone asks about them.

Both clocks read epoch seconds (UTC) and can be moved forward by hand, which is
what `POST /_sim/time/advance` does. The signature date check (`X-Sdk-Date`
within 15 minutes) deliberately uses the real wall clock instead, so moving
simulated time never makes a correctly signed request look stale.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Simulated time in epoch seconds."""

    def now(self) -> float: ...

    def advance(self, seconds: float) -> None: ...


class SystemClock:
    """Real time plus whatever has been added by `advance`."""

    def __init__(self) -> None:
        self._offset = 0.0

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._offset += seconds


class ManualClock:
    """Time that moves only when told to: for tests that must not depend on timing."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._now += seconds
