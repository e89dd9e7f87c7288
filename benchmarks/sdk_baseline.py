"""The baseline: a naive poller on the official SDK (`huaweicloudsdkcce`), as a process.

Synchronous, 32 worker threads, one SDK `CceClient` each (BasicCredentials, the
endpoint overridden to the simulator). A scheduler thread hands each cluster to
the workers at its poll interval, on the same schedule the operator keeps; a
worker lists the cluster's upgrade workflows and compares the newest one's phase
and task statuses with what it saw last. Nothing is written anywhere.

    python -m benchmarks.sdk_baseline --endpoint URL --clusters FILE --duration SECONDS

FILE is JSON: `[{"clusterId": ..., "interval": seconds}, ...]`. The result, one
JSON object on stdout: polls, errors, CPU seconds and wall seconds of the
polling window (after start-up and one warm-up request per thread).
"""

from __future__ import annotations

import argparse
import heapq
import json
import queue
import random
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from cce_upgrade_watch.simulator import DEMO_ACCESS_KEY, DEMO_PROJECT_ID, DEMO_SECRET_KEY

THREADS = 32


def _sdk_client(endpoint: str) -> Any:
    from huaweicloudsdkcce.v3 import CceClient
    from huaweicloudsdkcore.auth.credentials import BasicCredentials
    from huaweicloudsdkcore.http.http_config import HttpConfig

    config = HttpConfig.get_default_config()
    config.timeout = (5, 15)
    credentials = BasicCredentials(DEMO_ACCESS_KEY, DEMO_SECRET_KEY, DEMO_PROJECT_ID)
    return (
        CceClient.new_builder()
        .with_http_config(config)
        .with_credentials(credentials)
        .with_endpoints([endpoint])
        .build()
    )


class NaivePoller:
    def __init__(self, endpoint: str, clusters: list[tuple[str, float]], threads: int) -> None:
        from huaweicloudsdkcce.v3 import ListAutopilotUpgradeWorkFlowsRequest

        self._request_type = ListAutopilotUpgradeWorkFlowsRequest
        self._endpoint = endpoint
        self._clusters = clusters
        self._threads = threads
        self._due: queue.Queue[str | None] = queue.Queue()
        self._lock = threading.Lock()
        self._last_seen: dict[str, tuple[Any, ...]] = {}
        self.polls = 0
        self.errors = 0
        self.changes = 0

    def _poll(self, client: Any, cluster_id: str) -> None:
        try:
            response = client.list_autopilot_upgrade_work_flows(
                self._request_type(cluster_id=cluster_id)
            )
        except Exception:
            with self._lock:
                self.errors += 1
            return
        items = response.items or []
        newest = items[-1] if items else None
        seen: tuple[Any, ...] = ()
        if newest is not None and newest.status is not None:
            points = newest.status.point_statuses or []
            seen = (newest.status.phase, *((p.task_type, p.status) for p in points))
        with self._lock:
            self.polls += 1
            if self._last_seen.get(cluster_id) != seen:
                self._last_seen[cluster_id] = seen
                self.changes += 1

    def _work(self, ready: threading.Barrier, warm_up_cluster: str) -> None:
        client = _sdk_client(self._endpoint)
        self._poll(client, warm_up_cluster)  # opens the connection; not counted
        ready.wait()
        while (cluster_id := self._due.get()) is not None:
            self._poll(client, cluster_id)

    def run(self, duration: float) -> dict[str, float]:
        ready = threading.Barrier(self._threads + 1)
        workers = [
            threading.Thread(target=self._work, args=(ready, self._clusters[0][0]), daemon=True)
            for _ in range(self._threads)
        ]
        for worker in workers:
            worker.start()
        ready.wait()
        with self._lock:
            self.polls = self.errors = self.changes = 0
            self._last_seen.clear()
        cpu_started = time.process_time()
        started = time.monotonic()
        # Each cluster's first poll falls at a random point of its interval, as in a
        # poller that has been running for a while; then one every interval.
        schedule = [
            (started + random.uniform(0, every), cid, every) for cid, every in self._clusters
        ]
        heapq.heapify(schedule)
        deadline = started + duration
        while schedule and schedule[0][0] < deadline:
            due, cluster_id, every = heapq.heappop(schedule)
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._due.put(cluster_id)
            heapq.heappush(schedule, (due + every, cluster_id, every))
        time.sleep(max(0.0, deadline - time.monotonic()))
        for _ in workers:
            self._due.put(None)
        for worker in workers:
            worker.join(timeout=30)
        return {
            "polls": self.polls,
            "errors": self.errors,
            "changes": self.changes,
            "cpuSeconds": time.process_time() - cpu_started,
            "wallSeconds": time.monotonic() - started,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.sdk_baseline")
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--clusters", type=Path, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--threads", type=int, default=THREADS)
    args = parser.parse_args(argv)
    # The SDK cannot parse Go's time layout of the timestamps and warns each time.
    warnings.simplefilter("ignore")
    clusters = [
        (c["clusterId"], float(c["interval"])) for c in json.loads(args.clusters.read_text())
    ]
    result = NaivePoller(args.endpoint, clusters, args.threads).run(args.duration)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
