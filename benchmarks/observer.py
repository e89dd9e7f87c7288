"""What the benchmark sees of the operator's output, through watches, with timestamps.

Two watch streams (CceUpgradeWatch objects in every namespace, and their Events)
record when each object first carried a status, every task status it later
showed, and every Event, each with the time the benchmark received it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from benchmarks.fleet import watches_path
from benchmarks.kube import KubeHttp

Key = tuple[str, str]  # (namespace, name)
EVENTS_PATH = "/api/v1/events"


@dataclass(frozen=True)
class SeenEvent:
    at: float
    reason: str
    message: str


@dataclass
class Observations:
    first_status_at: dict[Key, float] = field(default_factory=dict)
    #: (received at, {taskType: status}) for every status version seen, oldest first.
    task_statuses: dict[Key, list[tuple[float, dict[str, str]]]] = field(default_factory=dict)
    events: dict[Key, list[SeenEvent]] = field(default_factory=dict)


class Observer:
    """Runs the two watches as background tasks; `wait_for` waits on what they saw."""

    def __init__(self, kube: KubeHttp) -> None:
        self._kube = kube
        self.seen = Observations()
        self._changed = asyncio.Condition()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        path = watches_path()
        items, version = await self._kube.list_items(path)
        for item in items:
            self._record_watch(0.0, item)
        events_path = f"{EVENTS_PATH}?fieldSelector=involvedObject.kind%3DCceUpgradeWatch"
        events, events_version = await self._kube.list_items(events_path)
        for item in events:
            self._record_event(0.0, item)
        self._tasks = [
            asyncio.create_task(self._follow(path, version, self._record_watch)),
            asyncio.create_task(self._follow(events_path, events_version, self._record_event)),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _follow(
        self, path: str, version: str, record: Callable[[float, Mapping[str, Any]], None]
    ) -> None:
        async for received, _kind, obj in self._kube.watch(path, version):
            record(received, obj)
            async with self._changed:
                self._changed.notify_all()

    def _record_watch(self, received: float, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        status = obj.get("status")
        # The CRD defaults a new object's status to {observedGeneration: 0}; the
        # operator's first write always brings conditions.
        if not isinstance(status, Mapping) or not status.get("conditions"):
            return
        self.seen.first_status_at.setdefault(key, received)
        tasks = {
            str(point.get("taskType")): str(point.get("status"))
            for point in status.get("pointStatuses") or []
            if isinstance(point, Mapping)
        }
        history = self.seen.task_statuses.setdefault(key, [])
        if not history or history[-1][1] != tasks:
            history.append((received, tasks))

    def _record_event(self, received: float, obj: Mapping[str, Any]) -> None:
        involved = obj.get("involvedObject") or {}
        key = (str(involved.get("namespace")), str(involved.get("name")))
        seen = SeenEvent(received, str(obj.get("reason")), str(obj.get("message")))
        self.seen.events.setdefault(key, []).append(seen)

    async def wait_for(self, probe: Callable[[Observations], bool], within: float) -> bool:
        """Wait until `probe(observations)` holds (True) or `within` seconds pass (False)."""
        try:
            async with asyncio.timeout(within), self._changed:
                await self._changed.wait_for(lambda: probe(self.seen))
        except TimeoutError:
            return False
        return True


def task_status_seen_at(
    seen: Observations, key: Key, task: str, status: str, since: float
) -> float | None:
    """When the object's status first showed `task` in `status`, at or after `since`."""
    for received, tasks in seen.task_statuses.get(key, []):
        if received >= since and tasks.get(task) == status:
            return received
    return None


def task_event_seen_at(
    seen: Observations, key: Key, task: str, status: str, since: float
) -> float | None:
    """When a TaskStatusChanged Event for `task` going to `status` first arrived."""
    for event in seen.events.get(key, []):
        if (
            event.at >= since
            and event.reason == "TaskStatusChanged"
            and event.message.startswith(f"{task}:")
            and f"-> {status}" in event.message
        ):
            return event.at
    return None
