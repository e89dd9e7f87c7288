"""A simulator of its own whose one cluster has news around an upgrade, for e2e
tests of what people see (metrics, GitOps gates, printer columns).

The session's simulator adds clusters through its control API, which takes no
lifecycle data; this one starts from a scenario file. Its cluster: a pre-check
that failed with fatal findings 2 hours ago, in a workflow cancelled since (so
nothing runs and nothing is stuck), an automatic patch upgrade planned 2 hours
ahead (inside the default 24 h lead time), a newer patch suggested, a backup a
day old and the default maintenance window. Real time (time scale 1).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.support.simulator import SimulatorProcess

NEWS_CLUSTER = "5e1f0b9a-3c2d-4e6f-8a7b-9c0d1e2f3a4b"
PLAN_TARGET = "v1.28.3-r1"

SCENARIO: dict[str, Any] = {
    "description": "fatal pre-check findings, an upgrade in 2 h, a patch waiting, a backup",
    "timelines": {
        "precheck-fails-then-cancelled": {
            "cancelAfter": 7100,  # created at -7200: cancelled at -100
            "steps": [
                {"task": "PreCheck", "wait": 5, "queue": 2, "run": 20, "outcome": "Failed"},
                {"task": "Snapshot", "queue": 2, "run": 30},
                {"task": "Cluster", "queue": 5, "run": 120},
                {"task": "PostCheck", "queue": 2, "run": 20},
            ],
        }
    },
    "clusters": [
        {
            "clusterId": NEWS_CLUSTER,
            "version": "v1.28.3-r0",
            "workflows": [
                {
                    "timeline": "precheck-fails-then-cancelled",
                    "targetVersion": "v1.29.1-r0",
                    "at": -7200,
                }
            ],
            "lifecycle": {
                "suggestedPatch": "r1",
                "backups": [-86400],
                "plans": [{"targetVersion": PLAN_TARGET, "notBefore": 7200, "notAfter": 21600}],
            },
        }
    ],
}


@contextmanager
def news_simulator(workdir: Path) -> Iterator[SimulatorProcess]:
    """The simulator process serving `SCENARIO`; stopped on exit."""
    scenario = workdir / "news.yaml"
    scenario.write_text(yaml.safe_dump(SCENARIO))
    process = SimulatorProcess(workdir, scenario=str(scenario))
    process.start()
    try:
        yield process
    finally:
        process.stop()
