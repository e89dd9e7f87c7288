"""Fixtures for the simulator over real HTTP: a server on a free port, driven by a
manual clock, and a small client that signs requests like the SDK does."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from cce_upgrade_watch.cce.signing import DATE_FORMAT, sign
from cce_upgrade_watch.simulator import (
    DEMO_ACCESS_KEY,
    DEMO_CLUSTER_ID,
    DEMO_PROJECT_ID,
    DEMO_SECRET_KEY,
    ManualClock,
    SimulatorServer,
    SimulatorThread,
)
from tests.support.oidc import TestIssuer, identity_config

START = 1_700_000_000.0
OTHER_PROJECT = "fedcba9876543210fedcba9876543210"


@dataclass
class Api:
    """Calls the simulated API the way a cloud client does."""

    http: httpx.AsyncClient
    base_url: str
    project_id: str = DEMO_PROJECT_ID
    access_key: str = DEMO_ACCESS_KEY
    secret_key: str = DEMO_SECRET_KEY

    def path(
        self,
        cluster_id: str = DEMO_CLUSTER_ID,
        workflow_id: str | None = None,
        project_id: str | None = None,
    ) -> str:
        path = (
            f"/autopilot/v3/projects/{project_id or self.project_id}"
            f"/clusters/{cluster_id}/operation/upgradeworkflows"
        )
        return f"{path}/{workflow_id}" if workflow_id else path

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        secret_key: str | None = None,
        access_key: str | None = None,
        signed_at: datetime | None = None,
        token: str | None = None,
        project_header: str | None = None,
        extra_headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        content = b"" if body is None else httpx.Request("POST", "/", json=body).read()
        if token is not None:
            headers = {"X-Auth-Token": token, "Content-Type": "application/json"}
        else:
            headers = {
                "Host": urlsplit(self.base_url).netloc,
                "X-Sdk-Date": (signed_at or datetime.now(UTC)).strftime(DATE_FORMAT),
                "X-Project-Id": project_header or path.split("/")[4],
                "Content-Type": "application/json",
                **(extra_headers or {}),
            }
            signature = sign(
                method=method,
                path=path,
                query=[],
                headers=headers,
                body=content,
                secret_key=secret_key or self.secret_key,
            )
            headers["Authorization"] = signature.authorization(access_key or self.access_key)
        return await self.http.request(
            method, self.base_url + path, content=content or None, headers=headers
        )

    async def list_workflows(
        self, cluster_id: str = DEMO_CLUSTER_ID, **options: Any
    ) -> httpx.Response:
        return await self.call("GET", self.path(cluster_id), **options)

    async def items(self, cluster_id: str = DEMO_CLUSTER_ID) -> list[dict[str, Any]]:
        response = await self.list_workflows(cluster_id)
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    async def control(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return await self.http.request(method, f"{self.base_url}/_sim{path}", json=body)

    async def control_ok(self, method: str, path: str, body: Any = None) -> Any:
        response = await self.control(method, path, body)
        assert response.status_code in (200, 201), response.text
        return response.json()


@dataclass
class Sim:
    server: SimulatorServer
    api: Api
    clock: ManualClock


Launch = Callable[..., Awaitable[Sim]]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


@pytest.fixture
async def launch(http: httpx.AsyncClient) -> AsyncIterator[Launch]:
    servers: list[SimulatorServer] = []

    async def launch(scenario: str | None = "idle", **options: Any) -> Sim:
        clock = options.pop("clock", None) or ManualClock(START)
        server = SimulatorServer(scenario, clock=clock, **options)
        await server.start()
        servers.append(server)
        return Sim(server, Api(http, server.url), clock)

    yield launch
    for server in servers:
        await server.stop()


@pytest.fixture
def issuer() -> TestIssuer:
    return TestIssuer()


@pytest.fixture
def simulator(issuer: TestIssuer) -> Iterator[SimulatorThread]:
    """The simulator with every identity path configured, trusting `issuer`."""
    with SimulatorThread(SimulatorServer("history", clock=ManualClock())) as sim:
        sim.call(
            lambda state: state.identity.configure(
                identity_config(project_id=DEMO_PROJECT_ID, jwks=issuer.jwks())
            )
        )
        yield sim
