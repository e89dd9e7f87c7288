"""The benchmark's one table, with the issue's targets and whether each holds."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from benchmarks.baseline import BaselineFigures
from benchmarks.measure import OperatorFigures


@dataclass(frozen=True)
class Row:
    metric: str
    value: Callable[[OperatorFigures], str]
    target: str = ""
    holds: Callable[[OperatorFigures], bool] | None = None


def _number(value: float, digits: int = 1) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def ratio(figures: OperatorFigures, baseline: BaselineFigures | None) -> float:
    if baseline is None or not figures.polls or not baseline.polls:
        return math.nan
    ours = figures.cpu_seconds_per_1000_polls
    return baseline.cpu_seconds_per_1000_polls / ours if ours > 0 else math.inf


def rows(active_interval: float, baseline: BaselineFigures | None) -> list[Row]:
    detection_target = active_interval + 3
    return [
        Row(
            "convergence: all N objects carry a status (s)",
            lambda f: _number(f.convergence_seconds),
            "< 60",
            lambda f: f.convergence_seconds < 60,
        ),
        Row(
            "steady: operator CPU (% of one core)",
            lambda f: _number(f.cpu_percent, 2),
            "< 15",
            lambda f: f.cpu_percent < 15,
        ),
        Row(
            "steady: operator peak RSS, VmHWM (MiB)",
            lambda f: _number(f.peak_rss_mib),
            "< 250",
            lambda f: f.peak_rss_mib < 250,
        ),
        Row("steady: CCE requests/s", lambda f: _number(f.cce_requests_per_second, 2)),
        Row(
            "steady: Kubernetes API writes/s by the operator",
            lambda f: f"{f.kube_writes_per_second:.3f}",
        ),
        Row(
            "steady: poll-interval drift p50 / p99 (s)",
            lambda f: (
                f"{_number(f.drift_p50, 2)} / {_number(f.drift_p99, 2)}  (n={f.drift_samples})"
            ),
            "p99 < 2",
            lambda f: f.drift_p99 < 2,
        ),
        Row(
            "detection: status shows it, p50 / p99 (s)",
            lambda f: (
                f"{_number(f.detection_status_p50)} / {_number(f.detection_status_p99)}"
                f"  ({f.changes_detected}/{f.changes_forced} changes)"
            ),
            f"p99 <= {detection_target:g}",
            lambda f: (
                f.detection_status_p99 <= detection_target
                and f.changes_detected == f.changes_forced
            ),
        ),
        Row(
            "detection: Event exists, p50 / p99 (s)",
            lambda f: f"{_number(f.detection_event_p50)} / {_number(f.detection_event_p99)}",
            f"p99 <= {detection_target:g}",
            lambda f: f.detection_event_p99 <= detection_target,
        ),
        Row(
            "detection: operator writes per change",
            lambda f: _number(f.writes_per_change, 2),
        ),
        Row(
            "idle writes per unchanged poll",
            lambda f: (
                f"{f.idle_writes_per_poll:g}  "
                f"({f.kube_writes_by_operator} writes / {f.polls} polls)"
            ),
            "== 0",
            lambda f: f.kube_writes_by_operator == 0 and f.polls > 0,
        ),
        Row(
            "CPU s per 1000 polls: operator",
            lambda f: _number(f.cpu_seconds_per_1000_polls, 3),
        ),
        Row(
            f"CPU s per 1000 polls: SDK baseline ({baseline.threads if baseline else 32} threads)",
            lambda f: _number(baseline.cpu_seconds_per_1000_polls, 3) if baseline else "skipped",
        ),
        Row(
            "CPU per poll: SDK baseline / operator",
            lambda f: f"{_number(ratio(f, baseline), 1)}x",
            ">= 3x",
            (lambda f: ratio(f, baseline) >= 3) if baseline is not None else None,
        ),
    ]


def render(
    figures: Sequence[OperatorFigures],
    baseline: BaselineFigures | None,
    *,
    active_interval: float,
    header: Sequence[str],
) -> str:
    """A plain-text table; the targets are judged on the last column of figures."""
    table_rows = rows(active_interval, baseline)
    current = figures[-1]
    titles = ["metric", *(f.label for f in figures), "target", "holds"]
    cells = [
        [
            row.metric,
            *(row.value(f) for f in figures),
            row.target,
            ("yes" if row.holds(current) else "NO") if row.holds else "",
        ]
        for row in table_rows
    ]
    widths = [max(len(str(line[i])) for line in [titles, *cells]) for i in range(len(titles))]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    separator = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([*header, "", line(titles), separator, *(line(c) for c in cells)])


def failed_targets(
    figures: OperatorFigures, baseline: BaselineFigures | None, active_interval: float
) -> list[str]:
    return [
        row.metric
        for row in rows(active_interval, baseline)
        if row.holds is not None and not row.holds(figures)
    ]
