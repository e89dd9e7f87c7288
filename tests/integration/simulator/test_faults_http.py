"""Injected faults, as a client sees them on the wire."""

from __future__ import annotations

import json
import time
import zlib

import httpx
import pytest

from cce_upgrade_watch.simulator import DEMO_CLUSTER_ID

from .conftest import Launch

OTHER_CLUSTER = "11111111-2222-3333-4444-555555555555"


@pytest.mark.parametrize("status", [500, 503])
async def test_error_status_for_a_count_then_normal(launch: Launch, status: int) -> None:
    sim = await launch("success")
    await sim.api.control_ok("POST", "/faults", {"kind": "error", "status": status, "count": 2})
    for _ in range(2):
        response = await sim.api.list_workflows()
        assert response.status_code == status
        assert response.json()["error_code"] == f"CCE.01{status}001"
        assert response.headers["X-Request-Id"]
    assert (await sim.api.list_workflows()).status_code == 200
    assert (await sim.api.control_ok("GET", "/faults"))["faults"] == []


async def test_throttle_sends_retry_after(launch: Launch) -> None:
    sim = await launch("idle")
    await sim.api.control_ok(
        "POST", "/faults", {"kind": "throttle", "retryAfter": 7, "clusterId": DEMO_CLUSTER_ID}
    )
    response = await sim.api.list_workflows()
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.json()["error_code"] == "APIGW.0308"
    assert (await sim.api.list_workflows()).status_code == 429  # until cleared
    await sim.api.control_ok("DELETE", f"/faults?clusterId={DEMO_CLUSTER_ID}")
    assert (await sim.api.list_workflows()).status_code == 200


async def test_added_latency(launch: Launch) -> None:
    sim = await launch("idle")
    await sim.api.control_ok("POST", "/faults", {"kind": "latency", "seconds": 0.4, "count": 1})
    started = time.monotonic()
    assert (await sim.api.list_workflows()).status_code == 200
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    await sim.api.list_workflows()
    assert time.monotonic() - started < 0.4


async def test_dropped_connection_gets_no_answer(launch: Launch) -> None:
    sim = await launch("idle")
    await sim.api.control_ok("POST", "/faults", {"kind": "drop", "count": 1})
    with pytest.raises(httpx.RemoteProtocolError):
        await sim.api.list_workflows()
    assert (await sim.api.list_workflows()).status_code == 200
    state = await sim.api.control_ok("GET", "/state")
    assert state["stats"]["dropped"] == 1


async def test_malformed_json(launch: Launch) -> None:
    sim = await launch("idle")
    await sim.api.control_ok("POST", "/faults", {"kind": "malformed", "count": 1})
    response = await sim.api.list_workflows()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


async def test_empty_list_fault_hides_every_workflow_for_a_count(launch: Launch) -> None:
    sim = await launch("success")
    await sim.api.control_ok(
        "POST", "/faults", {"kind": "empty-list", "count": 1, "clusterId": DEMO_CLUSTER_ID}
    )
    glitch = await sim.api.list_workflows()
    assert glitch.status_code == 200
    assert glitch.json() == {"kind": "List", "apiVersion": "v3", "items": []}
    assert len((await sim.api.list_workflows()).json()["items"]) == 1  # back again


async def test_single_item_fault(launch: Launch) -> None:
    sim = await launch("success")
    await sim.api.control_ok("POST", "/faults", {"kind": "single-item", "count": 1})
    assert isinstance((await sim.api.list_workflows()).json()["items"], dict)
    assert isinstance((await sim.api.list_workflows()).json()["items"], list)


async def test_a_cluster_fault_spares_other_clusters(launch: Launch) -> None:
    sim = await launch("idle")
    await sim.api.control_ok("POST", "/clusters", {"clusters": [{"clusterId": OTHER_CLUSTER}]})
    fault = await sim.api.control_ok(
        "POST", "/faults", {"kind": "error", "status": 500, "clusterId": OTHER_CLUSTER}
    )
    assert (await sim.api.list_workflows(OTHER_CLUSTER)).status_code == 500
    assert (await sim.api.list_workflows()).status_code == 200
    await sim.api.control_ok("DELETE", f"/faults/{fault['id']}")
    assert (await sim.api.list_workflows(OTHER_CLUSTER)).status_code == 200
    missing = await sim.api.control("DELETE", f"/faults/{fault['id']}")
    assert missing.status_code == 404


async def test_faults_come_before_authentication_like_a_gateway(launch: Launch) -> None:
    sim = await launch("idle")
    await sim.api.control_ok("POST", "/faults", {"kind": "error", "status": 503})
    assert (await sim.api.list_workflows(secret_key="wrong")).status_code == 503
    cleared = await sim.api.control_ok("DELETE", "/faults")
    assert cleared == {"cleared": 1}
    assert (await sim.api.list_workflows(secret_key="wrong")).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "boom"},
        {"kind": "error", "status": 200},
        {"kind": "error", "count": 0},
        {"kind": "latency"},
        {"kind": "throttle", "retryAfter": "soon"},
        {"kind": "error", "clusterId": 5},
    ],
)
async def test_bad_fault_requests_are_400(launch: Launch, body: object) -> None:
    sim = await launch("idle")
    response = await sim.api.control("POST", "/faults", body)
    assert response.status_code == 400
    assert response.json()["error"]


# -- the API gateway's own answers (issue 10.9) ------------------------------------


async def test_api_not_published_is_the_gateways_404(launch: Launch) -> None:
    sim = await launch("idle")
    await sim.api.control_ok("POST", "/faults", {"kind": "api-not-published", "count": 1})
    response = await sim.api.list_workflows()
    assert response.status_code == 404
    assert response.json() == {
        "error_code": "APIGW.0101",
        "error_msg": "The API does not exist or has not been published in the environment.",
    }
    assert (await sim.api.list_workflows()).status_code == 200


async def test_clock_skew_is_the_gateways_401(launch: Launch) -> None:
    sim = await launch("idle")
    await sim.api.control_ok("POST", "/faults", {"kind": "clock-skew", "count": 1})
    response = await sim.api.list_workflows()
    assert response.status_code == 401
    body = response.json()
    assert body["error_code"] == "APIGW.0301"
    assert body["error_msg"].startswith(
        "Incorrect IAM authentication information: calc aksk signature fail:signature expired, "
        "signature time:"
    )
    assert ",server time:" in body["error_msg"]


# -- hostile bodies (issue 11.2, 11.3) ---------------------------------------------


async def test_gzip_bomb_is_small_on_the_wire_and_inflates_to_the_size(launch: Launch) -> None:
    sim = await launch("idle")
    size = 8 * 1024 * 1024
    await sim.api.control_ok("POST", "/faults", {"kind": "gzip-bomb", "bytes": size, "count": 1})
    async with sim.api.http.stream("GET", sim.api.base_url + sim.api.path()) as response:
        assert response.status_code == 200
        assert response.headers["Content-Encoding"] == "gzip"
        wire = b"".join([chunk async for chunk in response.aiter_raw()])
    assert len(wire) < size // 500
    inflated = zlib.decompress(wire, zlib.MAX_WBITS | 16)
    assert len(inflated) == size
    assert inflated.startswith(b'{"items": [')


async def test_oversized_announces_and_sends_its_size(launch: Launch) -> None:
    sim = await launch("idle")
    await sim.api.control_ok("POST", "/faults", {"kind": "oversized", "bytes": 300_000})
    response = await sim.api.http.get(sim.api.base_url + sim.api.path())
    assert response.headers["Content-Length"] == "300000"
    assert len(response.content) == 300_000
    assert json.loads(response.content) == {"items": []}


async def test_drip_sends_headers_then_a_byte_at_a_time_and_never_ends(launch: Launch) -> None:
    sim = await launch("idle")
    await sim.api.control_ok("POST", "/faults", {"kind": "drip", "seconds": 0.05})
    received = b""
    async with sim.api.http.stream("GET", sim.api.base_url + sim.api.path()) as response:
        assert response.status_code == 200
        async for chunk in response.aiter_raw():
            received += chunk
            if len(received) >= 5:
                break
    assert received.startswith(b"{    ")


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        ({"kind": "drip", "seconds": 0}, "above 0"),
        ({"kind": "gzip-bomb", "bytes": 1}, "bytes"),
        ({"kind": "oversized", "bytes": "big"}, "bytes"),
    ],
)
async def test_body_fault_options_are_checked(
    launch: Launch, body: dict[str, object], complaint: str
) -> None:
    sim = await launch("idle")
    response = await sim.api.control("POST", "/faults", body)
    assert response.status_code == 400
    assert complaint in response.text
