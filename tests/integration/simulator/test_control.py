"""The control API under /_sim/."""

from __future__ import annotations

import pytest

from cce_upgrade_watch.simulator import DEMO_CLUSTER_ID, DEMO_PROJECT_ID

from .conftest import START, Launch

NEW_CLUSTER = "11111111-2222-3333-4444-555555555555"


async def test_bulk_add_many_clusters_and_poll_them(launch: Launch) -> None:
    sim = await launch("idle")
    added = await sim.api.control_ok(
        "POST", "/clusters", {"count": 1000, "timeline": "success", "version": "v1.27.4-r0"}
    )
    clusters = added["clusters"]
    assert len(clusters) == 1000
    assert len({c["clusterId"] for c in clusters}) == 1000
    assert {c["projectId"] for c in clusters} == {DEMO_PROJECT_ID}
    listing = await sim.api.control_ok("GET", "/clusters")
    assert len(listing["clusters"]) == 1001
    some = clusters[500]["clusterId"]
    (item,) = await sim.api.items(some)
    assert item["spec"]["clusterVersion"] == "v1.27.4-r0"
    assert item["status"]["phase"] == "Init"


async def test_add_specific_clusters_and_reject_bad_ones_atomically(launch: Launch) -> None:
    sim = await launch("idle")
    response = await sim.api.control(
        "POST",
        "/clusters",
        {"clusters": [{"clusterId": NEW_CLUSTER}, {"clusterId": "bad"}]},
    )
    assert response.status_code == 400
    assert "bad" in response.json()["error"]
    assert NEW_CLUSTER not in sim.server.state.clusters
    await sim.api.control_ok(
        "POST",
        "/clusters",
        {"clusters": [{"clusterId": NEW_CLUSTER, "createTimeline": "rollback"}]},
    )
    duplicate = await sim.api.control(
        "POST", "/clusters", {"clusters": [{"clusterId": NEW_CLUSTER}]}
    )
    assert duplicate.status_code == 400
    created = await sim.api.call(
        "POST", sim.api.path(NEW_CLUSTER), {"spec": {"targetVersion": "v1.29.1-r0"}}
    )
    shown = await sim.api.control_ok("GET", f"/clusters/{NEW_CLUSTER}")
    assert shown["createTimeline"] == "rollback"
    assert shown["items"][0]["metadata"]["uid"] == created.json()["metadata"]["uid"]


@pytest.mark.parametrize(
    "body",
    [
        {"count": -1},
        {"count": "many"},
        {"count": 2, "clusterId": NEW_CLUSTER},
        {"clusters": [{"projectId": "nothex"}]},
        {"clusters": [{"unknownField": 1}]},
        {"clusters": [{"timeline": "no-such-timeline"}]},
        {"clusters": "x"},
    ],
)
async def test_bad_cluster_requests_are_400(launch: Launch, body: object) -> None:
    sim = await launch("idle")
    response = await sim.api.control("POST", "/clusters", body)
    assert response.status_code == 400, response.text
    assert len(sim.server.state.clusters) == 1


async def test_start_a_workflow_by_name_or_inline(launch: Launch) -> None:
    sim = await launch("idle")
    by_name = await sim.api.control_ok(
        "POST",
        f"/clusters/{DEMO_CLUSTER_ID}/workflows",
        {"timeline": "precheck-fails", "targetVersion": "v1.30.0-r0"},
    )
    assert by_name["spec"]["targetVersion"] == "v1.30.0-r0"
    inline = await sim.api.control_ok(
        "POST",
        f"/clusters/{DEMO_CLUSTER_ID}/workflows",
        {"timeline": {"steps": [{"task": "Cluster", "queue": 0, "run": 3}]}, "uid": "my-uid"},
    )
    assert inline["metadata"]["uid"] == "my-uid"
    sim.clock.advance(3)
    items = await sim.api.items()
    assert [item["status"]["phase"] for item in items] == ["Init", "Success"]
    bad = await sim.api.control(
        "POST", f"/clusters/{DEMO_CLUSTER_ID}/workflows", {"timeline": {"steps": []}}
    )
    assert bad.status_code == 400


async def test_force_a_task_and_a_phase(launch: Launch) -> None:
    sim = await launch("success")
    base = f"/clusters/{DEMO_CLUSTER_ID}/workflows/latest/force"
    forced = await sim.api.control_ok("POST", base, {"task": "Cluster", "status": "Failed"})
    statuses = {p["taskType"]: p["status"] for p in forced["status"]["pointStatuses"]}
    assert statuses == {
        "PreCheck": "Success",
        "Snapshot": "Success",
        "Cluster": "Failed",
        "PostCheck": "Init",
    }
    assert forced["status"]["phase"] == "Pending"
    odd = await sim.api.control_ok("POST", base, {"phase": "Upgrading"})
    assert odd["status"]["phase"] == "Upgrading"
    (item,) = await sim.api.items()
    assert item["status"]["phase"] == "Upgrading"
    for bad in ({}, {"task": "Cluster"}, {"task": "Nope", "status": "Running"}):
        assert (await sim.api.control("POST", base, bad)).status_code == 400
    missing = await sim.api.control(
        "POST", f"/clusters/{DEMO_CLUSTER_ID}/workflows/nope/force", {"phase": "Init"}
    )
    assert missing.status_code == 404


async def test_request_counts_and_timestamps(launch: Launch) -> None:
    sim = await launch("idle")
    await sim.api.list_workflows()
    sim.clock.advance(30)
    await sim.api.list_workflows()
    log = await sim.api.control_ok("GET", f"/clusters/{DEMO_CLUSTER_ID}/requests")
    assert log["count"] == 2
    assert log["timestamps"] == [START, START + 30]
    stats = await sim.api.control_ok("GET", "/stats?timestamps=1")
    assert stats["global"]["requests"] == 2
    assert stats["clusters"][DEMO_CLUSTER_ID]["timestamps"] == [START, START + 30]
    await sim.api.control_ok("DELETE", "/stats")
    assert (await sim.api.control_ok("GET", "/stats"))["global"]["requests"] == 0
    log = await sim.api.control_ok("GET", f"/clusters/{DEMO_CLUSTER_ID}/requests")
    assert log["count"] == 0


async def test_reset_restores_the_scenario_or_loads_another(launch: Launch) -> None:
    sim = await launch("success")
    await sim.api.control_ok("POST", "/clusters", {"count": 3})
    await sim.api.control_ok("POST", "/faults", {"kind": "drop"})
    await sim.api.control_ok("POST", "/reset")
    state = await sim.api.control_ok("GET", "/state")
    assert (state["clusters"], state["faults"], state["scenario"]) == (1, [], "success")
    await sim.api.control_ok("POST", "/reset", {"scenario": "rollback"})
    assert (await sim.api.control_ok("GET", "/state"))["scenario"] == "rollback"
    bad = await sim.api.control("POST", "/reset", {"scenario": "no-such"})
    assert bad.status_code == 400


async def test_delete_a_cluster(launch: Launch) -> None:
    sim = await launch("idle")
    await sim.api.control_ok("DELETE", f"/clusters/{DEMO_CLUSTER_ID}")
    assert (await sim.api.list_workflows()).status_code == 404
    assert (await sim.api.control("GET", f"/clusters/{DEMO_CLUSTER_ID}")).status_code == 404


async def test_bad_json_and_bad_style_are_400(launch: Launch) -> None:
    sim = await launch("idle")
    response = await sim.api.http.post(sim.api.base_url + "/_sim/faults", content=b"{nope")
    assert response.status_code == 400
    assert (await sim.api.control("PUT", "/style", {"itemsShape": "tree"})).status_code == 400
