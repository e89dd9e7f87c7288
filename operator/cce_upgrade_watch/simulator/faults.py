"""Injected faults: what the cloud's gateway does on a bad day.

A fault applies to one cluster or to every cluster, for a number of requests
or until cleared. Two kinds only modify an otherwise normal answer and can
stack with one other fault: `latency` (the answer comes late) and
`single-item` (a list answer carries `items` as the doc's single object). The
others replace the answer; the first matching one wins, the cluster's own
faults before global ones:

- `error`: an HTTP error status (default 503) with a CCE error body;
- `throttle`: 429 with `Retry-After`;
- `drop`: the connection is closed without any answer;
- `malformed`: 200 with a body that is not valid JSON;
- `empty-list`: 200 with a well-formed list that holds no workflow, as a
  glitching backend might answer: every workflow seems to have vanished.
- `api-not-published`: the API gateway's 404 `APIGW.0101` (the API is not
  published at this endpoint: a wrong region or endpoint);
- `clock-skew`: the API gateway's 401 `APIGW.0301` for a signature whose
  `X-Sdk-Date` is too far from the server's clock;
- `gzip-bomb`: 200, `Content-Encoding: gzip`, a small body that inflates to
  `bytes` (default 256 MiB) of JSON whitespace;
- `oversized`: 200 announcing (`Content-Length`) and sending `bytes` of JSON;
- `drip`: 200, then the body one byte every `seconds` (default 1), never ending.

Faults hit the API before authentication, as a gateway's would; the control
API under `/_sim/` is never faulted. A fault with an `api` hits only that API
(`API_NAMES`: the workflow calls, or one of the read-only lifecycle calls);
without one, every API.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class FaultKind(StrEnum):
    ERROR = "error"
    THROTTLE = "throttle"
    LATENCY = "latency"
    DROP = "drop"
    MALFORMED = "malformed"
    SINGLE_ITEM = "single-item"
    EMPTY_LIST = "empty-list"
    API_NOT_PUBLISHED = "api-not-published"
    CLOCK_SKEW = "clock-skew"
    GZIP_BOMB = "gzip-bomb"
    OVERSIZED = "oversized"
    DRIP = "drip"


# The APIs a fault can target.
API_WORKFLOWS = "workflows"
API_PRECHECK = "precheck"
API_PLANS = "plans"
API_WINDOW = "window"
API_UPGRADE_INFO = "upgradeinfo"
API_SNAPSHOTS = "snapshots"
API_NAMES = (API_WORKFLOWS, API_PRECHECK, API_PLANS, API_WINDOW, API_UPGRADE_INFO, API_SNAPSHOTS)

MODIFIER_KINDS = frozenset({FaultKind.LATENCY, FaultKind.SINGLE_ITEM})


@dataclass
class Fault:
    id: str
    kind: FaultKind
    cluster_id: str | None = None  # None: every cluster
    api: str | None = None  # None: every API (see API_NAMES)
    remaining: int | None = None  # None: until cleared
    status: int = 503  # error
    error_code: str | None = None  # error: default by status
    error_msg: str | None = None
    retry_after: int = 1  # throttle: seconds, sent in Retry-After
    latency: float = 0.0  # latency, drip: seconds added before answering / between bytes
    size: int = 256 * 1024 * 1024  # gzip-bomb (inflated), oversized: bytes of body
    applied: int = 0

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "kind": str(self.kind),
            "clusterId": self.cluster_id,
            "api": self.api,
            "remaining": self.remaining,
            "applied": self.applied,
        }
        if self.kind == FaultKind.ERROR:
            body.update(status=self.status, errorCode=self.error_code, errorMsg=self.error_msg)
        elif self.kind == FaultKind.THROTTLE:
            body["retryAfter"] = self.retry_after
        elif self.kind in (FaultKind.LATENCY, FaultKind.DRIP):
            body["latencySeconds"] = self.latency
        elif self.kind in (FaultKind.GZIP_BOMB, FaultKind.OVERSIZED):
            body["bytes"] = self.size
        return body


@dataclass(frozen=True, slots=True)
class FaultEffects:
    """What to do to one request."""

    latency: float = 0.0
    single_item: bool = False
    action: Fault | None = None  # error, throttle, drop, malformed or empty-list


NO_EFFECTS = FaultEffects()


@dataclass
class FaultBook:
    _by_cluster: dict[str, list[Fault]] = field(default_factory=dict)
    _global: list[Fault] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add(self, fault_kind: FaultKind, **options: Any) -> Fault:
        remaining = options.get("remaining")
        if remaining is not None and remaining < 1:
            raise ValueError("count must be at least 1 (omit it to keep the fault until cleared)")
        fault = Fault(id=f"fault-{next(self._ids)}", kind=fault_kind, **options)
        if fault.cluster_id is None:
            self._global.append(fault)
        else:
            self._by_cluster.setdefault(fault.cluster_id, []).append(fault)
        return fault

    def all(self) -> list[Fault]:
        return [*self._global, *(f for faults in self._by_cluster.values() for f in faults)]

    def remove(self, fault_id: str) -> bool:
        for faults in (self._global, *self._by_cluster.values()):
            for fault in faults:
                if fault.id == fault_id:
                    faults.remove(fault)
                    return True
        return False

    def clear(self, cluster_id: str | None = None) -> int:
        """Remove the faults of one cluster, or every fault when `cluster_id` is None."""
        if cluster_id is not None:
            return len(self._by_cluster.pop(cluster_id, []))
        count = len(self.all())
        self._global.clear()
        self._by_cluster.clear()
        return count

    def take(self, cluster_id: str, api: str = API_WORKFLOWS) -> FaultEffects:
        """The effects for one request to `cluster_id`'s `api`, consuming counted faults."""
        own = self._by_cluster.get(cluster_id)
        if not own and not self._global:
            return NO_EFFECTS  # the common case, kept to two lookups
        latency = 0.0
        single_item = False
        action: Fault | None = None
        used: list[tuple[list[Fault], Fault]] = []
        for faults in (own or [], self._global):
            for fault in faults:
                if fault.api is not None and fault.api != api:
                    continue
                if fault.kind == FaultKind.LATENCY:
                    latency = max(latency, fault.latency)
                elif fault.kind == FaultKind.SINGLE_ITEM:
                    single_item = True
                elif action is None:
                    action = fault
                else:
                    continue
                used.append((faults, fault))
        for faults, fault in used:
            fault.applied += 1
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    faults.remove(fault)
        if own == []:
            self._by_cluster.pop(cluster_id, None)
        return FaultEffects(latency=latency, single_item=single_item, action=action)
