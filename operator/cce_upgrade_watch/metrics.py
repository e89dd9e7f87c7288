"""Prometheus metrics of the operator, served by prometheus-client.

A registry of its own (not the global one), so tests can run several operators
in one process and the output holds only what this operator defines.
Per-object series are removed when their object goes away.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from cce_upgrade_watch.cce.models import Phase, TaskStatus

_KNOWN_PHASES = tuple(str(phase) for phase in Phase)
_KNOWN_TASK_STATUSES = tuple(str(status) for status in TaskStatus)
#: The task types the API documents (and the official SDK's `TaskType` lists).
_KNOWN_TASK_TYPES = ("PreCheck", "Snapshot", "Cluster", "PostCheck", "Rollback")
#: The label value of anything else the cloud sends: label values come from an
#: untrusted answer, and each new value would be a new series for ever.
OTHER = "Other"


def bounded_label(value: str, known: tuple[str, ...]) -> str:
    """`value` if it is one of `known`, else `Other`."""
    return value if value in known else OTHER


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.cce_requests = Counter(
            "cce_api_requests",
            "Requests sent to the CCE API, by operation and HTTP status (or error kind).",
            ["operation", "code"],
            registry=self.registry,
        )
        self.cce_request_seconds = Histogram(
            "cce_api_request_duration_seconds",
            "Time taken by CCE API requests, retries counted separately.",
            ["operation"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20),
            registry=self.registry,
        )
        self.polls = Counter(
            "cceupgradewatch_polls",
            "Polls of the upgrade-workflow list, by result (success or the failure reason).",
            ["result"],
            registry=self.registry,
        )
        self.workflow_phase = Gauge(
            "cceupgradewatch_workflow_phase",
            "1 for the current phase of the current workflow of a watch, 0 for the others.",
            ["namespace", "name", "phase"],
            registry=self.registry,
        )
        self.task_status = Gauge(
            "cceupgradewatch_task_status",
            "1 for the current status of each task of the current workflow, 0 for the others.",
            ["namespace", "name", "task_type", "status"],
            registry=self.registry,
        )
        self.dropped_fields = Counter(
            "cceupgradewatch_dropped_fields",
            "Informational fields of CCE answers that could not be read and were left out, "
            "by field (the API's name; only the parser's fixed set of names).",
            ["field"],
            registry=self.registry,
        )
        self.watches = Gauge(
            "cceupgradewatch_watches",
            "CceUpgradeWatch objects this operator polls.",
            registry=self.registry,
        )
        # Which label sets each object owns, so they can be removed with the object.
        self._phase_series: dict[tuple[str, str], set[tuple[str, ...]]] = {}
        self._task_series: dict[tuple[str, str], set[tuple[str, ...]]] = {}

    def serve(self, port: int, address: str = "0.0.0.0") -> None:  # noqa: S104 (a Pod's port)
        start_http_server(port, addr=address, registry=self.registry)

    def watch_count(self, count: Callable[[], int]) -> None:
        self.watches.set_function(count)

    # -------------------------------------------------- hooks called by the operator

    def observe_cce_request(self, operation: str, code: str, seconds: float) -> None:
        # The client names operations for people ("list upgrade workflows").
        operation = operation.replace(" ", "_")
        self.cce_requests.labels(operation, code).inc()
        self.cce_request_seconds.labels(operation).observe(seconds)

    def poll_finished(self, result: str, seconds: float) -> None:
        del seconds  # the request histogram already has the timing
        self.polls.labels(result).inc()

    def fields_dropped(self, counts: Mapping[str, int]) -> None:
        for field, count in counts.items():
            self.dropped_fields.labels(field).inc(count)

    def status_written(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        key = (namespace, name)
        phase = status.get("phase")
        phases: set[str] = set()
        if isinstance(phase, str) and phase:
            phase = bounded_label(phase, _KNOWN_PHASES)
            phases = {*_KNOWN_PHASES, phase}
        self._replace(
            self.workflow_phase,
            self._phase_series,
            key,
            {(namespace, name, p): float(p == phase) for p in phases},
        )
        tasks: dict[tuple[str, ...], float] = {}
        for point in status.get("pointStatuses") or []:
            task_type = point.get("taskType") if isinstance(point, Mapping) else None
            if not task_type or not isinstance(task_type, str):
                continue
            task_type = bounded_label(task_type, _KNOWN_TASK_TYPES)
            current = point.get("status") or ""
            if current:
                current = bounded_label(str(current), _KNOWN_TASK_STATUSES)
            for status_value in {*_KNOWN_TASK_STATUSES, current} - {""}:
                labels = (namespace, name, task_type, status_value)
                # Several tasks of unknown types share the `Other` series: 1 if any has it.
                tasks[labels] = max(tasks.get(labels, 0.0), float(status_value == current))
        self._replace(self.task_status, self._task_series, key, tasks)

    def forget(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        self._replace(self.workflow_phase, self._phase_series, key, {})
        self._replace(self.task_status, self._task_series, key, {})

    @staticmethod
    def _replace(
        gauge: Gauge,
        owned: dict[tuple[str, str], set[tuple[str, ...]]],
        key: tuple[str, str],
        values: Mapping[tuple[str, ...], float],
    ) -> None:
        for stale in owned.get(key, set()) - values.keys():
            gauge.remove(*stale)
        for labels, value in values.items():
            gauge.labels(*labels).set(value)
        if values:
            owned[key] = set(values)
        else:
            owned.pop(key, None)
