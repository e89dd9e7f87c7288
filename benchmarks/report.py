"""The benchmark's one table, with the issue's targets and whether each holds."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from benchmarks.baseline import BaselineFigures
from benchmarks.measure import OperatorFigures
from benchmarks.stats import Spread, spread, spreads

_Figures = TypeVar("_Figures", OperatorFigures, BaselineFigures)


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


@dataclass(frozen=True)
class Targets:
    """The issue's targets (#15): the N=10,000 ones from 5,000 watches up."""

    convergence_seconds: float
    peak_rss_mib: float
    drift_p99: float = 1.0
    detection_slack: float = 1.0  # seconds over activePollInterval for the p99
    sdk_ratio: float = 5.0

    @classmethod
    def for_watches(cls, watches: int) -> Targets:
        if watches < 5000:
            return cls(convergence_seconds=60, peak_rss_mib=250)
        return cls(convergence_seconds=120, peak_rss_mib=500)


def rows(
    active_interval: float, baseline: BaselineFigures | None, watches: int = 1000
) -> list[Row]:
    targets = Targets.for_watches(watches)
    detection_target = active_interval + targets.detection_slack
    return [
        Row(
            "convergence: all N objects carry a status (s)",
            lambda f: _number(f.convergence_seconds),
            f"< {targets.convergence_seconds:g}",
            lambda f: f.convergence_seconds < targets.convergence_seconds,
        ),
        Row(
            "convergence: CPU s, operator / apiserver / etcd / bench",
            lambda f: " / ".join(
                _number(v)
                for v in (
                    f.convergence_cpu_operator,
                    f.convergence_cpu_apiserver,
                    f.convergence_cpu_etcd,
                    f.convergence_cpu_benchmark,
                )
            ),
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
            f"< {targets.peak_rss_mib:g}",
            lambda f: f.peak_rss_mib < targets.peak_rss_mib,
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
            f"p99 < {targets.drift_p99:g}",
            lambda f: f.drift_p99 < targets.drift_p99,
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
            f">= {targets.sdk_ratio:g}x",
            (lambda f: ratio(f, baseline) >= targets.sdk_ratio) if baseline is not None else None,
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
    current = figures[-1]
    table_rows = rows(active_interval, baseline, current.watches)
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
        for row in rows(active_interval, baseline, figures.watches)
        if row.holds is not None and not row.holds(figures)
    ]


def median_figures(runs: Sequence[_Figures]) -> _Figures:
    """Field-wise median of repeated runs of one variant (counts rounded to whole
    numbers); text fields from the first run. The targets are judged on this."""
    first = runs[0]
    values: dict[str, Any] = {}
    for field in dataclasses.fields(first):
        current = getattr(first, field.name)
        if isinstance(current, bool) or not isinstance(current, int | float):
            values[field.name] = current
            continue
        middle = spread([float(getattr(run, field.name)) for run in runs]).median
        values[field.name] = round(middle) if isinstance(current, int) else middle
    return dataclasses.replace(first, **values)


def run_figures(figures: OperatorFigures, baseline: BaselineFigures | None) -> dict[str, Any]:
    """One run's figures as JSON-ready numbers, derived ones included (their spread
    over runs is the spread of the per-run values, not a ratio of medians)."""
    return {
        **dataclasses.asdict(figures),
        "cpu_seconds_per_1000_polls": figures.cpu_seconds_per_1000_polls,
        "idle_writes_per_poll": figures.idle_writes_per_poll,
        "kube_writes_per_second": figures.kube_writes_per_second,
        "sdk_ratio": ratio(figures, baseline),
    }


def baseline_figures(baseline: BaselineFigures) -> dict[str, Any]:
    return {
        **dataclasses.asdict(baseline),
        "cpu_seconds_per_1000_polls": baseline.cpu_seconds_per_1000_polls,
        "cpu_percent": baseline.cpu_percent,
    }


def summarize(
    runs_by_label: Mapping[str, Sequence[Mapping[str, Any]]],
) -> dict[str, dict[str, Spread]]:
    """Per variant label: min / median / max of every numeric figure over its runs."""
    return {label: spreads(runs) for label, runs in runs_by_label.items()}


def render_spreads(summary: Mapping[str, Mapping[str, Spread]], runs: int) -> str:
    """Every figure's min / median / max over the runs, one column per variant."""
    labels = list(summary)
    names: list[str] = []
    for label in labels:
        names.extend(name for name in summary[label] if name not in names)
    titles = ["figure", *(f"{label}: min / median / max" for label in labels)]

    def cell(item: Spread | None) -> str:
        if item is None:
            return ""
        return " / ".join(_compact(v) for v in (item.low, item.median, item.high))

    cells = [[name, *(cell(summary[label].get(name)) for label in labels)] for name in names]
    widths = [max(len(line[i]) for line in [titles, *cells]) for i in range(len(titles))]

    def line(values: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)) + " |"

    separator = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    heading = f"spread over {runs} runs of each variant (the table above shows the medians)"
    return "\n".join([heading, "", line(titles), separator, *(line(c) for c in cells)])


def _compact(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf"
    if value == int(value) and abs(value) >= 10:
        return str(int(value))
    return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
