"""Running the simulator: in the caller's loop or on a thread."""

from __future__ import annotations

import httpx
import pytest

from cce_upgrade_watch.simulator import SimulatorServer, SimulatorThread


async def test_url_exists_only_while_started() -> None:
    server = SimulatorServer(None)
    with pytest.raises(RuntimeError, match="not started"):
        _ = server.url
    async with server:
        assert server.url == f"http://127.0.0.1:{server.port}"
        assert server.state.clusters == {}
        with pytest.raises(RuntimeError, match="already started"):
            await server.start()
    await server.stop()  # a second stop is harmless


def test_thread_serves_and_runs_calls_on_its_loop() -> None:
    with SimulatorThread(SimulatorServer("success")) as sim:
        assert httpx.get(sim.url + "/_sim/health").json() == {"status": "ok"}
        assert sim.call(lambda state: len(state.clusters)) == 1


def test_thread_start_failure_is_raised() -> None:
    with SimulatorThread(SimulatorServer("idle")) as sim:
        taken = SimulatorThread(SimulatorServer("idle", port=sim.server.port))
        with pytest.raises(OSError):  # noqa: PT011 - the errno text differs by platform
            taken.start()
        taken.stop()  # nothing to stop: harmless
