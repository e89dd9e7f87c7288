"""Injected faults, as a client sees them on the wire."""

from __future__ import annotations

import json
import time

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
