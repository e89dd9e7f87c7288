"""Prometheus metrics of the operator (prometheus-client; served by `metrics_http`).

A registry of its own (not the global one), so tests can run several operators
in one process and the output holds only what this operator defines.
Per-object series are removed when their object goes away.

Every per-watch series is derived from the status as stored (`status_written`),
never from a poll's answer alone: after a restart the first write brings them
back as they were, and what the metrics say is what `kubectl get` says.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from cce_upgrade_watch.cce.errors import TimestampParseError
from cce_upgrade_watch.cce.models import Phase, TaskStatus
from cce_upgrade_watch.cce.timestamps import parse_timestamp

_KNOWN_PHASES = tuple(str(phase) for phase in Phase)
_KNOWN_TASK_STATUSES = tuple(str(status) for status in TaskStatus)
#: The task types the API documents (and the official SDK's `TaskType` lists).
_KNOWN_TASK_TYPES = ("PreCheck", "Snapshot", "Cluster", "PostCheck", "Rollback")
#: The label value of anything else the cloud sends: label values come from an
#: untrusted answer, and each new value would be a new series for ever.
OTHER = "Other"
#: Pre-check finding levels with a count in `status.preCheck` (`fatal`, ...): the
#: label values are this fixed set, never the cloud's strings.
_FINDING_LEVELS = ("Fatal", "Warning", "Info")


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
        self.precheck_findings = Gauge(
            "cceupgradewatch_precheck_findings",
            "Findings of the watched cluster's latest pre-check that did not pass, by level "
            "(Fatal blocks an upgrade). Absent while no pre-check is known.",
            ["namespace", "name", "level"],
            registry=self.registry,
        )
        self.next_upgrade = Gauge(
            "cceupgradewatch_next_upgrade_timestamp_seconds",
            "Earliest start (notBefore, Unix time) of the pending automatic upgrade plan. "
            "Absent while none is scheduled.",
            ["namespace", "name"],
            registry=self.registry,
        )
        self.next_window = Gauge(
            "cceupgradewatch_next_maintenance_window_timestamp_seconds",
            "Next start of the cluster's maintenance window (Unix time), as computed "
            "when the status was last written. Absent while no window is set.",
            ["namespace", "name"],
            registry=self.registry,
        )
        self.patch_available = Gauge(
            "cceupgradewatch_patch_available",
            "1 when CCE suggests a newer patch than the cluster runs, else 0. "
            "Absent while the versions are unknown.",
            ["namespace", "name"],
            registry=self.registry,
        )
        self.last_backup = Gauge(
            "cceupgradewatch_last_backup_timestamp_seconds",
            "When the cluster's control plane was last backed up (Unix time). "
            "Absent while no backup is known.",
            ["namespace", "name"],
            registry=self.registry,
        )
        self.watches = Gauge(
            "cceupgradewatch_watches",
            "CceUpgradeWatch objects this operator polls.",
            registry=self.registry,
        )
        # Which label sets each object owns in each per-object gauge, so they
        # can be removed with the object.
        self._owned: dict[Gauge, dict[tuple[str, str], set[tuple[str, ...]]]] = {
            gauge: {}
            for gauge in (
                self.workflow_phase,
                self.task_status,
                self.precheck_findings,
                self.next_upgrade,
                self.next_window,
                self.patch_available,
                self.last_backup,
            )
        }

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
            self.workflow_phase, key, {(namespace, name, p): float(p == phase) for p in phases}
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
        self._replace(self.task_status, key, tasks)
        self._lifecycle_written(key, status)

    def _lifecycle_written(self, key: tuple[str, str], status: Mapping[str, Any]) -> None:
        """The series of the lifecycle sections (`preCheck`, `nextUpgrade`,
        `versions`, `lastBackupTime`); a section that is absent has none."""
        precheck = _mapping(status.get("preCheck"))
        findings: dict[tuple[str, ...], float] = {}
        if precheck is not None:
            for level in _FINDING_LEVELS:
                count = precheck.get(level.lower())
                if isinstance(count, int | float) and not isinstance(count, bool):
                    findings[(*key, level)] = float(count)
        self._replace(self.precheck_findings, key, findings)

        upcoming = _mapping(status.get("nextUpgrade")) or {}
        self._replace(self.next_upgrade, key, _timestamp_series(key, upcoming.get("notBefore")))
        window = _mapping(upcoming.get("maintenanceWindow")) or {}
        self._replace(self.next_window, key, _timestamp_series(key, window.get("nextStart")))

        versions = _mapping(status.get("versions")) or {}
        available = versions.get("patchAvailable")
        self._replace(
            self.patch_available,
            key,
            {key: float(available)} if isinstance(available, bool) else {},
        )
        self._replace(self.last_backup, key, _timestamp_series(key, status.get("lastBackupTime")))

    def forget(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        for gauge in self._owned:
            self._replace(gauge, key, {})

    def _replace(
        self,
        gauge: Gauge,
        key: tuple[str, str],
        values: Mapping[tuple[str, ...], float],
    ) -> None:
        owned = self._owned[gauge]
        for stale in owned.get(key, set()) - values.keys():
            gauge.remove(*stale)
        for labels, value in values.items():
            gauge.labels(*labels).set(value)
        if values:
            owned[key] = set(values)
        else:
            owned.pop(key, None)


def _mapping(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def _timestamp_series(key: tuple[str, str], value: Any) -> dict[tuple[str, ...], float]:
    """`{key: Unix time}` for an RFC 3339 string, else nothing (an unreadable time
    is left out rather than exported as a wrong one)."""
    if not isinstance(value, str):
        return {}
    try:
        moment: datetime | None = parse_timestamp(value)
    except TimestampParseError:
        return {}
    return {key: moment.timestamp()} if moment is not None else {}
