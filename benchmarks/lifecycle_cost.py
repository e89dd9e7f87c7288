"""What the lifecycle calls cost the operator's process, per call and per poll.

    .venv/bin/python -m benchmarks.lifecycle_cost

`make bench`'s steady window (one idle interval) holds no periodic lifecycle call
(plans every 2h, the others every 6h), so docs/PERFORMANCE.md computes their
steady cost from the budget and these figures: the client CPU (this process only;
the simulator runs as its own process) of one workflow list and of each lifecycle
part as the poll loop asks it (`lifecycle_fetch.py`: call, parse, section), and
what asking the schedule costs a poll whose answer did not change.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import timeit
from datetime import UTC, datetime
from pathlib import Path

from tests.support.simulator import SimulatorProcess

from cce_upgrade_watch.cce.auth import AkSkAuth
from cce_upgrade_watch.cce.client import CceClient, RetryPolicy
from cce_upgrade_watch.cce.lifecycle import LifecycleApi
from cce_upgrade_watch.cce.models import UpgradeWorkflow, parse_workflow_list
from cce_upgrade_watch.cce.ordering import current_first
from cce_upgrade_watch.config import OperatorConfig
from cce_upgrade_watch.lifecycle_fetch import fetch_lifecycle_parts
from cce_upgrade_watch.lifecycle_parts import DueCalls, Part, PartState
from cce_upgrade_watch.lifecycle_state import LifecycleSchedule
from cce_upgrade_watch.simulator import (
    DEMO_ACCESS_KEY,
    DEMO_CLUSTER_ID,
    DEMO_PROJECT_ID,
    DEMO_SECRET_KEY,
)
from cce_upgrade_watch.spec import parse_watch_spec

CALLS = 400  # per figure, after a warm-up


async def client_costs(url: str) -> None:
    auth = AkSkAuth(DEMO_ACCESS_KEY, DEMO_SECRET_KEY, DEMO_PROJECT_ID)
    async with CceClient(retry=RetryPolicy(attempts=1)) as client:

        async def poll() -> None:
            await client.list_upgrade_workflows(
                DEMO_PROJECT_ID, DEMO_CLUSTER_ID, auth=auth, endpoint=url
            )

        for _ in range(CALLS // 8):
            await poll()
        started = time.process_time()
        for _ in range(CALLS):
            await poll()
        print(f"workflow list: {(time.process_time() - started) / CALLS * 1e3:.3f} ms CPU")
        api = LifecycleApi(client, DEMO_PROJECT_ID, DEMO_CLUSTER_ID, auth=auth, endpoint=url)
        now = datetime.now(UTC)
        for part in Part:
            due = DueCalls(frozenset({part}), None)
            for _ in range(CALLS // 8):
                await fetch_lifecycle_parts(api, due, now, watch="bench/one")
            started = time.process_time()
            for _ in range(CALLS):
                await fetch_lifecycle_parts(api, due, now, watch="bench/one")
            cost = (time.process_time() - started) / CALLS * 1e3
            print(f"lifecycle part {part}: {cost:.3f} ms CPU")


def schedule_cost() -> None:
    """`due` on an unchanged answer (what every poll now asks), and `next_due`."""
    spec = parse_watch_spec(
        OperatorConfig().with_defaults(
            {
                "region": "ap-southeast-1",
                "projectId": DEMO_PROJECT_ID,
                "clusterId": DEMO_CLUSTER_ID,
                "credentialsSecretRef": {"name": "credentials"},
            }
        )
    )
    workflows = _one_answer()
    stored = {"lifecycle": {str(part): {"state": PartState.KNOWN} for part in Part}}
    schedule = LifecycleSchedule("uid")
    now = datetime.now(UTC)
    schedule.due(spec, current_first(workflows), stored, now)
    runs = 20_000
    due = timeit.timeit(
        lambda: schedule.due(spec, current_first(workflows), stored, now), number=runs
    )
    next_due = timeit.timeit(schedule.next_due, number=runs)
    print(f"per poll: due + current_first {due / runs * 1e6:.1f} us, "
          f"next_due {next_due / runs * 1e6:.1f} us")  # fmt: skip


def _one_answer() -> list[UpgradeWorkflow]:
    return list(
        parse_workflow_list(
            {
                "items": [
                    {
                        "metadata": {"uid": "wf", "creationTimestamp": "2024-01-01T00:00:00Z"},
                        "spec": {"clusterVersion": "v1.28.3-r0", "targetVersion": "v1.29.1-r0"},
                        "status": {
                            "phase": "Running",
                            "pointStatuses": [
                                {"taskType": "PreCheck", "taskID": "p", "status": "Success"},
                                {"taskType": "Snapshot", "taskID": "s", "status": "Running"},
                                {"taskType": "Cluster", "status": "Init"},
                            ],
                        },
                    }
                ]
            }
        ).items
    )


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        simulator = SimulatorProcess(Path(directory), scenario="lifecycle")
        simulator.start()
        try:
            asyncio.run(client_costs(simulator.url))
        finally:
            simulator.stop()
    schedule_cost()


if __name__ == "__main__":
    main()
