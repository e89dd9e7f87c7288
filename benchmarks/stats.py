"""Pure statistics of the benchmark: percentiles, poll-interval drift, and the
spread (min / median / max) of a figure over repeated runs."""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (`fraction` in 0..1) of `values`; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def poll_interval_drifts(
    timestamps: Mapping[str, Sequence[float]],
    expected_interval: Mapping[str, float],
    *,
    since: float,
    until: float,
) -> list[float]:
    """Each observed poll interval minus the interval the cluster should be polled at.

    `timestamps` are each cluster's request times (epoch seconds); only intervals
    that start at or after `since` and end at or before `until` count. Clusters
    missing from `expected_interval` are ignored.
    """
    drifts: list[float] = []
    for cluster_id, times in timestamps.items():
        expected = expected_interval.get(cluster_id)
        if expected is None:
            continue
        window = [t for t in times if since <= t <= until]
        drifts.extend(later - earlier - expected for earlier, later in _pairs(window))
    return drifts


def _pairs(values: Sequence[float]) -> Iterable[tuple[float, float]]:
    ordered = sorted(values)
    return itertools.pairwise(ordered)


def requests_between(
    timestamps: Mapping[str, Sequence[float]], *, since: float, until: float
) -> int:
    """How many requests were made in [since, until], over every cluster."""
    return sum(1 for times in timestamps.values() for t in times if since <= t <= until)


@dataclass(frozen=True)
class Spread:
    """The minimum, median and maximum of one figure over repeated runs."""

    low: float
    median: float
    high: float

    def as_json(self) -> dict[str, float]:
        return {"min": self.low, "median": self.median, "max": self.high}


def spread(values: Sequence[float]) -> Spread:
    """Min / median / max of `values`, NaN ignored (all NaN when none is a number).

    The median of an even count is the mean of the two middle values, as
    `statistics.median` has it.
    """
    numbers = [v for v in values if not math.isnan(v)]
    if not numbers:
        return Spread(math.nan, math.nan, math.nan)
    return Spread(min(numbers), statistics.median(numbers), max(numbers))


def spreads(runs: Sequence[Mapping[str, object]]) -> dict[str, Spread]:
    """Per numeric key (bools excepted) present in every run: its spread over the runs."""
    if not runs:
        return {}
    keys = [
        key
        for key, value in runs[0].items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]
    return {
        key: spread([float(run[key]) for run in runs])  # type: ignore[arg-type]
        for key in keys
        if all(isinstance(run.get(key), int | float) for run in runs)
    }
