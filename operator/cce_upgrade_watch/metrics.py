"""Prometheus metrics of the operator (prometheus-client; served by `metrics_http`).

A registry of its own (not the global one), so tests can run several operators
in one process and the output holds only what this operator defines.
Per-object series are removed when their object goes away.

Every per-watch series is derived from the status as stored (`status_written`),
never from a poll's answer alone: after a restart the first write brings them
back as they were, and what the metrics say is what `kubectl get` says.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

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
        # The series of each (operation, code) pair the client has seen: a few
        # operations, and codes from the bounded set of HTTP statuses and error kinds.
        self._request_series: dict[tuple[str, str], tuple[Counter, Histogram]] = {}
        # The per-watch series: one small record per watch, turned into series
        # when scraped (`PerWatchSeries`).
        self.per_watch = PerWatchSeries()
        self.registry.register(self.per_watch)

    def watch_count(self, count: Callable[[], int]) -> None:
        self.watches.set_function(count)

    # -------------------------------------------------- hooks called by the operator

    def observe_cce_request(self, operation: str, code: str, seconds: float) -> None:
        # Every CCE request comes here: `labels()` checks and converts its
        # arguments on every call, so each pair's series are looked up once.
        series = self._request_series.get((operation, code))
        if series is None:
            # The client names operations for people ("list upgrade workflows").
            name = operation.replace(" ", "_")
            series = (self.cce_requests.labels(name, code), self.cce_request_seconds.labels(name))
            self._request_series[(operation, code)] = series
        series[0].inc()
        series[1].observe(seconds)

    def poll_finished(self, result: str, seconds: float) -> None:
        del seconds  # the request histogram already has the timing
        self.polls.labels(result).inc()

    def fields_dropped(self, counts: Mapping[str, int]) -> None:
        for field, count in counts.items():
            self.dropped_fields.labels(field).inc(count)

    def status_written(self, namespace: str, name: str, status: Mapping[str, Any]) -> None:
        self.per_watch.set(namespace, name, watch_series(status))

    def forget(self, namespace: str, name: str) -> None:
        self.per_watch.forget(namespace, name)


@dataclass(frozen=True, slots=True)
class WatchSeries:
    """What a watch's series say, derived from its stored status; label values
    already bounded to known values plus `Other`."""

    phase: str | None = None
    #: (task type, the statuses its tasks have now; "" for a task without one)
    tasks: tuple[tuple[str, frozenset[str]], ...] = ()
    findings: tuple[tuple[str, float], ...] = ()  # (level, count)
    next_upgrade: float | None = None  # Unix times
    next_window: float | None = None
    patch_available: float | None = None
    last_backup: float | None = None


def watch_series(status: Mapping[str, Any]) -> WatchSeries:
    phase = status.get("phase")
    bounded_phase = (
        bounded_label(phase, _KNOWN_PHASES) if isinstance(phase, str) and phase else None
    )
    tasks: dict[str, set[str]] = {}
    for point in status.get("pointStatuses") or []:
        task_type = point.get("taskType") if isinstance(point, Mapping) else None
        if not task_type or not isinstance(task_type, str):
            continue
        current = point.get("status") or ""
        if current:
            current = bounded_label(str(current), _KNOWN_TASK_STATUSES)
        # Several tasks of unknown types share the `Other` series: 1 if any has it.
        tasks.setdefault(bounded_label(task_type, _KNOWN_TASK_TYPES), set()).add(current)

    precheck = _mapping(status.get("preCheck"))
    findings: list[tuple[str, float]] = []
    if precheck is not None:
        for level in _FINDING_LEVELS:
            count = precheck.get(level.lower())
            if isinstance(count, int | float) and not isinstance(count, bool):
                findings.append((level, float(count)))
    upcoming = _mapping(status.get("nextUpgrade")) or {}
    window = _mapping(upcoming.get("maintenanceWindow")) or {}
    versions = _mapping(status.get("versions")) or {}
    available = versions.get("patchAvailable")
    return WatchSeries(
        phase=bounded_phase,
        tasks=tuple((task_type, frozenset(now)) for task_type, now in tasks.items()),
        findings=tuple(findings),
        next_upgrade=_timestamp(upcoming.get("notBefore")),
        next_window=_timestamp(window.get("nextStart")),
        patch_available=float(available) if isinstance(available, bool) else None,
        last_backup=_timestamp(status.get("lastBackupTime")),
    )


_NO_SERIES = WatchSeries()


class PerWatchSeries(Collector):
    """The per-watch gauges (phase, task status, the lifecycle sections), kept as
    one frozen `WatchSeries` per watch and turned into series when scraped.

    prometheus-client's own `Gauge` keeps a child object, with a lock, for every
    label set: ~15 per watch, ~4 KiB per watch in all (tracemalloc at N=3000,
    docs/PERFORMANCE.md change 21), against ~0.4 KiB here. The output is the same.
    Scrapes are encoded in a thread (`metrics_http`): `collect` works on a
    snapshot of the records, each replaced whole, never changed.
    """

    def __init__(self) -> None:
        self._watches: dict[tuple[str, str], WatchSeries] = {}

    def set(self, namespace: str, name: str, series: WatchSeries) -> None:
        if series == _NO_SERIES:
            self._watches.pop((namespace, name), None)
        else:
            self._watches[(namespace, name)] = series

    def forget(self, namespace: str, name: str) -> None:
        self._watches.pop((namespace, name), None)

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return list(self._families())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        phase, task, findings, upgrade, window, patch, backup = families = self._families()
        for (namespace, name), series in list(self._watches.items()):
            if series.phase is not None:
                for value in _phases(series.phase):
                    phase.add_metric([namespace, name, value], float(value == series.phase))
            for task_type, now in series.tasks:
                for value in _task_statuses(now):
                    task.add_metric([namespace, name, task_type, value], float(value in now))
            for level, count in series.findings:
                findings.add_metric([namespace, name, level], count)
            for family, moment in (
                (upgrade, series.next_upgrade),
                (window, series.next_window),
                (patch, series.patch_available),
                (backup, series.last_backup),
            ):
                if moment is not None:
                    family.add_metric([namespace, name], moment)
        yield from families

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        watch = ["namespace", "name"]
        return (
            GaugeMetricFamily(
                "cceupgradewatch_workflow_phase",
                "1 for the current phase of the current workflow of a watch, 0 for the others.",
                labels=[*watch, "phase"],
            ),
            GaugeMetricFamily(
                "cceupgradewatch_task_status",
                "1 for the current status of each task of the current workflow, 0 for the others.",
                labels=[*watch, "task_type", "status"],
            ),
            GaugeMetricFamily(
                "cceupgradewatch_precheck_findings",
                "Findings of the watched cluster's latest pre-check that did not pass, by level "
                "(Fatal blocks an upgrade). Absent while no pre-check is known.",
                labels=[*watch, "level"],
            ),
            GaugeMetricFamily(
                "cceupgradewatch_next_upgrade_timestamp_seconds",
                "Earliest start (notBefore, Unix time) of the pending automatic upgrade plan. "
                "Absent while none is scheduled.",
                labels=watch,
            ),
            GaugeMetricFamily(
                "cceupgradewatch_next_maintenance_window_timestamp_seconds",
                "Next start of the cluster's maintenance window (Unix time), as computed "
                "when the status was last written. Absent while no window is set.",
                labels=watch,
            ),
            GaugeMetricFamily(
                "cceupgradewatch_patch_available",
                "1 when CCE suggests a newer patch than the cluster runs, else 0. "
                "Absent while the versions are unknown.",
                labels=watch,
            ),
            GaugeMetricFamily(
                "cceupgradewatch_last_backup_timestamp_seconds",
                "When the cluster's control plane was last backed up (Unix time). "
                "Absent while no backup is known.",
                labels=watch,
            ),
        )


def _phases(current: str) -> tuple[str, ...]:
    """The phase values a watch has series for: the known ones, and `Other`."""
    return _KNOWN_PHASES if current in _KNOWN_PHASES else (*_KNOWN_PHASES, current)


def _task_statuses(now: frozenset[str]) -> tuple[str, ...]:
    """The status values a task type has series for: the known ones, and `Other`
    when one of its tasks has an unknown status."""
    if OTHER in now and OTHER not in _KNOWN_TASK_STATUSES:
        return (*_KNOWN_TASK_STATUSES, OTHER)
    return _KNOWN_TASK_STATUSES


def _mapping(value: Any) -> Mapping[str, Any] | None:
    return value if isinstance(value, Mapping) else None


def _timestamp(value: Any) -> float | None:
    """The Unix time of an RFC 3339 string, else None (an unreadable time is left
    out rather than exported as a wrong one)."""
    if not isinstance(value, str):
        return None
    try:
        moment: datetime | None = parse_timestamp(value)
    except TimestampParseError:
        return None
    return moment.timestamp() if moment is not None else None
