"""Request accounting, so tests and benchmarks can see how the operator polls."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from cce_upgrade_watch.simulator.faults import API_WORKFLOWS

# Enough to check a poll interval over hours at 30 s, small enough for 5000 clusters.
TIMESTAMPS_KEPT = 512


@dataclass
class RequestLog:
    """Requests to one cluster (any outcome). `count` and `timestamps` are those to
    the upgrade-workflow API (one per poll, what poll-interval tests look at);
    `by_api` and `by_operation` count every API, so tests can check what the
    read-only lifecycle calls cost (e.g. a pre-check read only when it changed)."""

    count: int = 0
    auth_failures: int = 0
    timestamps: deque[float] = field(default_factory=lambda: deque(maxlen=TIMESTAMPS_KEPT))
    statuses: Counter[int] = field(default_factory=Counter)
    by_api: Counter[str] = field(default_factory=Counter)
    by_operation: Counter[str] = field(default_factory=Counter)

    def record(self, at: float, api: str = API_WORKFLOWS, operation: str = "") -> None:
        self.by_api[api] += 1
        if operation:
            self.by_operation[operation] += 1
        if api == API_WORKFLOWS:
            self.count += 1
            self.timestamps.append(at)

    def to_json(self, *, with_timestamps: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "count": self.count,
            "authFailures": self.auth_failures,
            "statuses": {str(status): n for status, n in sorted(self.statuses.items())},
            "byApi": dict(sorted(self.by_api.items())),
            "byOperation": dict(sorted(self.by_operation.items())),
        }
        if with_timestamps:
            body["timestamps"] = list(self.timestamps)
        return body


@dataclass
class GlobalStats:
    """Every API request, including those to clusters the simulator does not know."""

    requests: int = 0
    auth_failures: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    dropped: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "authFailures": self.auth_failures,
            "dropped": self.dropped,
            "statuses": {str(status): n for status, n in sorted(self.statuses.items())},
        }
