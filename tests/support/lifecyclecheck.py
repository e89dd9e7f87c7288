"""`check` against the simulator's `lifecycle` scenario, as the integration tests run it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cce_upgrade_watch.cli import main
from cce_upgrade_watch.simulator import (
    DEMO_ACCESS_KEY,
    DEMO_CLUSTER_ID,
    DEMO_PROJECT_ID,
    DEMO_SECRET_KEY,
    ManualClock,
    SimulatorServer,
    SimulatorThread,
)

#: The simulator's clock at the start of every test (a fixed moment, so windows
#: and plans come out the same).
START = 1_700_000_000.0


def lifecycle_simulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatorThread]:
    """The `lifecycle` scenario on a manual clock, with `check` given the demo keys
    (and no other credentials) through the environment."""
    monkeypatch.setenv("CLOUD_SDK_AK", DEMO_ACCESS_KEY)
    monkeypatch.setenv("CLOUD_SDK_SK", DEMO_SECRET_KEY)
    for name in ("CLOUD_SDK_SECURITY_TOKEN", "CCE_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with SimulatorThread(SimulatorServer("lifecycle", clock=ManualClock(START))) as sim:
        yield sim


def check(sim: SimulatorThread, *extra: str) -> int:
    """`cce-upgrade-watch check` of the demo cluster; its exit code."""
    return main(
        ["check", "--endpoint", sim.url, "--project-id", DEMO_PROJECT_ID,
         "--cluster-id", DEMO_CLUSTER_ID, *extra]
    )  # fmt: skip
