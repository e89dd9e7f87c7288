"""Running the simulator: in the caller's event loop, or on a thread of its own."""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import logging
import ssl
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from aiohttp import web

from cce_upgrade_watch.simulator.app import build_app
from cce_upgrade_watch.simulator.clock import Clock, SystemClock
from cce_upgrade_watch.simulator.scenarios import CredentialSpec, Scenario, load_scenario
from cce_upgrade_watch.simulator.state import SimulatorState

T = TypeVar("T")

# How long stop() lets in-flight requests finish.
SHUTDOWN_TIMEOUT_SECONDS = 2.0


def _url_host(host: str) -> str:
    try:
        return f"[{host}]" if ipaddress.ip_address(host).version == 6 else host
    except ValueError:
        return host


class SimulatorServer:
    """The simulator on a TCP port, in the running event loop.

        async with SimulatorServer("success", time_scale=10) as sim:
            sim.url            # http://127.0.0.1:PORT
            sim.state          # SimulatorState: clusters, faults, stats, clock

    `port=0` picks a free port. `clock` drives the workflows (a `ManualClock` makes
    tests independent of timing); `wall_clock` is what `X-Sdk-Date` is checked
    against (default: real time). `credentials` are accepted in addition to the
    scenario's; the demo credentials apply only when neither defines any.
    """

    def __init__(
        self,
        scenario: Scenario | str | Path | None = "idle",
        *,
        time_scale: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
        wall_clock: Callable[[], float] | None = None,
        credentials: Iterable[CredentialSpec] = (),
        access_log: bool = False,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        # HTTPS when given: a simulator reached by name from outside loopback (a Pod
        # on a test node), where the operator accepts https:// endpoints only.
        self._ssl_context = ssl_context
        self._requested_port = port
        self._access_log = access_log
        self.state = SimulatorState(
            clock=clock or SystemClock(), time_scale=time_scale, wall_clock=wall_clock
        )
        if scenario is not None and not isinstance(scenario, Scenario):
            scenario = load_scenario(scenario)
        self.state.load(scenario or Scenario(name="empty"), credentials)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the simulator is not started")
        return self._port

    @property
    def url(self) -> str:
        """The base URL, without a trailing slash: the endpoint to give a client."""
        scheme = "https" if self._ssl_context is not None else "http"
        return f"{scheme}://{_url_host(self.host)}:{self.port}"

    async def start(self) -> None:
        if self._runner is not None:
            raise RuntimeError("the simulator is already started")
        runner = web.AppRunner(
            build_app(self.state),
            access_log=logging.getLogger("cce_upgrade_watch.simulator.access")
            if self._access_log
            else None,
            shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS,
        )
        await runner.setup()
        try:
            site = web.TCPSite(
                runner, self.host, self._requested_port, ssl_context=self._ssl_context
            )
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self._port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> SimulatorServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()


class SimulatorThread:
    """The simulator on its own event loop in a background thread, for synchronous
    callers such as the official (requests-based) SDK or a test without asyncio.

        with SimulatorThread(SimulatorServer("success")) as sim:
            requests.get(sim.url + "/_sim/health")
            sim.call(lambda state: len(state.clusters))   # runs on the simulator's loop
    """

    def __init__(self, server: SimulatorServer) -> None:
        self.server = server
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def state(self) -> SimulatorState:
        """Read freely; change it through `call` (or the control API) while running."""
        return self.server.state

    def start(self, timeout: float = 30.0) -> None:
        started: concurrent.futures.Future[None] = concurrent.futures.Future()
        loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self.server.start())
            except BaseException as exc:
                started.set_exception(exc)
                loop.close()
                return
            started.set_result(None)
            loop.run_forever()
            loop.run_until_complete(self.server.stop())
            loop.close()

        thread = threading.Thread(target=run, name="cce-simulator", daemon=True)
        thread.start()
        started.result(timeout)  # raises what start() raised, e.g. the port is taken
        self._loop, self._thread = loop, thread

    def call(self, function: Callable[[SimulatorState], T], timeout: float = 30.0) -> T:
        """Run `function(state)` on the simulator's loop and return its result."""
        if self._loop is None:
            raise RuntimeError("the simulator is not started")

        async def run() -> T:
            return function(self.server.state)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)

    def __enter__(self) -> SimulatorThread:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
