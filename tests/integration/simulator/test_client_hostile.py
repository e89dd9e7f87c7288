"""The operator's CCE client against the simulator's hostile answers, over real HTTP.

A gzip bomb, an oversized body, a body that never ends, and the API gateway's own
error codes (issues 10.9, 11.2, 11.3, 11.5). Both senders are tried: aiohttp (what
the operator uses) and httpx's transport (`CceClient(transport=...)`).
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from cce_upgrade_watch.cce.auth import AkSkAuth, TokenAuth
from cce_upgrade_watch.cce.client import CceClient, RetryPolicy
from cce_upgrade_watch.cce.errors import (
    ApiUnavailable,
    ClockSkew,
    ClusterNotFound,
    EndpointNotPublished,
    InvalidResponse,
)
from cce_upgrade_watch.reconcile import PollFailure
from cce_upgrade_watch.simulator import (
    DEMO_ACCESS_KEY,
    DEMO_CLUSTER_ID,
    DEMO_PROJECT_ID,
    DEMO_SECRET_KEY,
    DEMO_TOKEN,
)

from .conftest import Launch, Sim

CAP = 1024 * 1024
MiB = 1024 * 1024

MakeClient = Callable[..., CceClient]


@pytest.fixture(params=["aiohttp", "httpx"])
async def make_client(request: pytest.FixtureRequest) -> AsyncIterator[MakeClient]:
    clients: list[CceClient] = []

    def make(**options: Any) -> CceClient:
        options.setdefault("retry", RetryPolicy(attempts=1))
        if request.param == "httpx":
            options["transport"] = httpx.AsyncHTTPTransport()
        client = CceClient(**options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def _list(client: CceClient, sim: Sim, auth: httpx.Auth | None = None) -> Any:
    # Bounded, so that a client that never gives up fails the test instead of hanging it.
    return await asyncio.wait_for(
        client.list_upgrade_workflows(
            DEMO_PROJECT_ID,
            DEMO_CLUSTER_ID,
            endpoint=sim.server.url,
            auth=auth or TokenAuth(DEMO_TOKEN),
        ),
        timeout=60,
    )


async def _fault(sim: Sim, **fault: Any) -> None:
    await sim.api.control_ok("POST", "/faults", fault)


# -- no answer can exhaust the operator (issue 11.2) --------------------------------


async def test_a_gzip_bomb_is_refused_without_inflating_it(
    launch: Launch, make_client: MakeClient
) -> None:
    sim = await launch("idle")
    client = make_client()
    await _list(client, sim)  # connections and caches warm, before measuring
    await _fault(sim, kind="gzip-bomb", bytes=64 * MiB, count=1)
    gc.collect()
    tracemalloc.start()
    try:
        with pytest.raises(InvalidResponse, match=f"answer larger than {CAP} bytes"):
            await _list(client, sim)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 64 MiB inflated whole before; now at most the cap plus the pieces in flight.
    assert peak < 4 * MiB, f"peak {peak / MiB:.1f} MiB"
    assert len(await _list(client, sim)) == 0  # the next answer is read as usual


async def test_an_oversized_answer_is_refused_by_its_content_length(
    launch: Launch, make_client: MakeClient
) -> None:
    sim = await launch("idle")
    client = make_client(max_response_bytes=64 * 1024)
    await _fault(sim, kind="oversized", bytes=200 * 1024, count=1)
    with pytest.raises(InvalidResponse, match="answer larger than 65536 bytes") as caught:
        await _list(client, sim)
    assert PollFailure.from_error(caught.value).reason == "InvalidResponse"
    # Below the cap, the same kind of answer is read whole.
    await _fault(sim, kind="oversized", bytes=60 * 1024, count=1)
    assert len(await _list(client, sim)) == 0


async def test_an_answer_within_the_default_cap_is_read(
    launch: Launch, make_client: MakeClient
) -> None:
    sim = await launch("idle")
    await _fault(sim, kind="gzip-bomb", bytes=CAP - 64 * 1024, count=1)
    assert len(await _list(make_client(), sim)) == 0  # inflated, within the cap


# -- a slow server cannot hold a slot (issue 11.3) -----------------------------------


async def test_a_dripping_body_ends_at_the_attempts_deadline(
    launch: Launch, make_client: MakeClient
) -> None:
    sim = await launch("idle")
    # A byte every 0.1 s: the per-read timeout (15 s) is never reached.
    await _fault(sim, kind="drip", seconds=0.1)
    client = make_client(deadline=1.0)
    started = asyncio.get_running_loop().time()
    with pytest.raises(ApiUnavailable, match=r"no complete answer within 1s"):
        await _list(client, sim)
    print(f"measured: gave up after {asyncio.get_running_loop().time() - started:.2f} s")


# -- the API gateway's codes (issue 10.9) ---------------------------------------------


async def test_a_gateway_404_is_an_invalid_endpoint_not_a_missing_cluster(
    launch: Launch, make_client: MakeClient
) -> None:
    sim = await launch("idle")
    await _fault(sim, kind="api-not-published", count=1)
    with pytest.raises(EndpointNotPublished) as caught:
        await _list(make_client(), sim)
    error = caught.value
    assert error.reason == "InvalidEndpoint"
    assert not isinstance(error, ClusterNotFound)
    assert error.error_code == "APIGW.0101"
    assert "check the region or the endpoint" in str(error)
    failure = PollFailure.from_error(error)
    assert failure.needs_a_person


async def test_a_cce_404_is_still_a_missing_cluster(
    launch: Launch, make_client: MakeClient
) -> None:
    sim = await launch("idle")
    with pytest.raises(ClusterNotFound):
        await asyncio.wait_for(
            make_client().list_upgrade_workflows(
                DEMO_PROJECT_ID,
                "00000000-0000-0000-0000-000000000000",
                endpoint=sim.server.url,
                auth=TokenAuth(DEMO_TOKEN),
            ),
            timeout=60,
        )


async def test_a_stale_signature_is_clock_skew_naming_the_operators_clock(
    launch: Launch, make_client: MakeClient
) -> None:
    sim = await launch("idle")
    # The simulator checks X-Sdk-Date against the real wall clock, like the gateway.
    late = AkSkAuth(
        DEMO_ACCESS_KEY,
        DEMO_SECRET_KEY,
        DEMO_PROJECT_ID,
        clock=lambda: datetime.now(UTC) - timedelta(minutes=20),
    )
    client = make_client()
    with pytest.raises(ClockSkew) as caught:
        await _list(client, sim, late)
    error = caught.value
    assert (error.reason, error.status_code, error.error_code) == ("ClockSkew", 401, "APIGW.0301")
    text = str(error)
    assert "the operator's clock is off (about 20 minutes behind the server's)" in text
    assert "NTP" in text
    assert "signature time:" not in text  # per-request times would rewrite the status each poll
    failure = PollFailure.from_error(error)
    assert not failure.needs_a_person  # retried: fixing the clock fixes it
    # Two polls a few seconds apart give the same message (no status write per poll).
    with pytest.raises(ClockSkew) as again:
        await _list(client, sim, late)
    assert PollFailure.from_error(again.value) == failure


async def test_the_clock_skew_fault_is_clock_skew(launch: Launch, make_client: MakeClient) -> None:
    sim = await launch("idle")
    await _fault(sim, kind="clock-skew", count=1)
    with pytest.raises(ClockSkew, match="about 20 minutes behind"):
        await _list(make_client(), sim)
