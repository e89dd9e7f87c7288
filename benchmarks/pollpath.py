"""CPU per poll of the CCE client alone, in one process, against the simulator.

    python -m benchmarks.pollpath --clusters 1000 --seconds 20

No Kubernetes, no kopf: N clusters, each polled once a second-tick in bursts the
way the poll grid wakes them (all clusters due on a tick are sent together), by
the operator's own `CceClient` with AK/SK signing. Prints the process CPU per
1,000 polls. A quick check of one change to the poll path (signing, request
building, sending, parsing) in a minute, before `make bench` judges it end to
end; the simulator runs as its own process, so its CPU is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
from tests.support.simulator import SimulatorProcess

from benchmarks import fleet
from benchmarks.measure import SimulatorApi
from cce_upgrade_watch.cce.auth import AkSkAuth
from cce_upgrade_watch.cce.client import CceClient
from cce_upgrade_watch.cce.endpoints import EndpointPolicy
from cce_upgrade_watch.simulator import DEMO_ACCESS_KEY, DEMO_PROJECT_ID, DEMO_SECRET_KEY


async def measure(url: str, clusters: int, seconds: float, per_tick: int) -> dict[str, float]:
    sim = SimulatorApi(url)
    try:
        active = fleet.active_count(clusters)
        ids = await sim.add_clusters(active, timeline=fleet.LONG_UPGRADE_TIMELINE)
        ids += await sim.add_clusters(clusters - active)
    finally:
        await sim.aclose()
    client = CceClient(
        timeout=httpx.Timeout(10.0),
        endpoint_policy=EndpointPolicy(allow_insecure_loopback=True),
    )
    auth = AkSkAuth(DEMO_ACCESS_KEY, DEMO_SECRET_KEY, DEMO_PROJECT_ID)

    async def poll(cluster_id: str) -> None:
        await client.list_upgrade_workflows(
            DEMO_PROJECT_ID, cluster_id, auth=auth, endpoint=url, region=None, tenant="ns"
        )

    # Warm up: every cluster once (connections, caches of unchanged answers).
    for start in range(0, len(ids), 64):
        await asyncio.gather(*(poll(c) for c in ids[start : start + 64]))
    polls = 0
    cpu0, wall0 = time.process_time(), time.monotonic()
    next_tick = wall0
    index = 0
    while time.monotonic() - wall0 < seconds:
        batch = [ids[(index + i) % len(ids)] for i in range(per_tick)]
        index += per_tick
        await asyncio.gather(*(poll(c) for c in batch))
        polls += len(batch)
        next_tick += 1.0
        await asyncio.sleep(max(0.0, next_tick - time.monotonic()))  # the poll grid's tick
    cpu = time.process_time() - cpu0
    await client.aclose()
    return {"polls": polls, "cpuSeconds": cpu, "cpuSecondsPer1000Polls": 1000 * cpu / polls}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pollpath", description=__doc__)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--per-tick", type=int, default=33, help="polls per 1-s tick (33)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cce-pollpath-") as workdir:
        simulator = SimulatorProcess(Path(workdir))
        simulator.start()
        try:
            figures = asyncio.run(
                measure(simulator.url, args.clusters, args.seconds, args.per_tick)
            )
        finally:
            simulator.stop()
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
