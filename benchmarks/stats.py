"""Pure statistics of the benchmark: percentiles and poll-interval drift."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence


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
