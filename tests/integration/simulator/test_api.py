"""The simulated upgrade-workflow API: paths, shapes, operations, errors."""

from __future__ import annotations

import re

from cce_upgrade_watch.cce.models import parse_workflow_list
from cce_upgrade_watch.simulator import DEMO_CLUSTER_ID, DEMO_TOKEN

from .conftest import Launch

GO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,9})? \+0000 UTC$")
REQUEST_ID = re.compile(r"^[0-9a-f]{32}$")


async def test_list_has_the_documented_shape(launch: Launch) -> None:
    sim = await launch("success")
    sim.clock.advance(70)  # Cluster running
    response = await sim.api.list_workflows()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert REQUEST_ID.match(response.headers["X-Request-Id"])
    body = response.json()
    assert (body["kind"], body["apiVersion"]) == ("List", "v3")
    (item,) = body["items"]
    assert (item["kind"], item["apiVersion"]) == ("WorkFlowTask", "v3")
    assert set(item["metadata"]) == {
        "uid",
        "name",
        "labels",
        "annotations",
        "creationTimestamp",
        "updateTimestamp",
    }
    assert GO_TIME.match(item["metadata"]["creationTimestamp"])
    assert item["metadata"]["creationTimestamp"] == "2023-11-14 22:13:20 +0000 UTC"
    assert item["spec"] == {
        "clusterID": DEMO_CLUSTER_ID,
        "clusterVersion": "v1.28.3-r0",
        "targetVersion": "v1.29.1-r0",
    }
    status = item["status"]
    assert status["phase"] == "Running"
    precheck, _snapshot, cluster, postcheck = status["pointStatuses"]
    assert set(precheck) == {
        "taskType",
        "taskID",
        "status",
        "startTimeStamp",
        "endTimeStamp",
        "expireTimeStamp",
    }
    assert (cluster["taskType"], cluster["status"]) == ("Cluster", "Running")
    assert "endTimeStamp" not in cluster
    assert postcheck == {"taskType": "PostCheck", "status": "Init"}
    assert status["lineStatuses"][1] == {
        "startPoint": {"taskType": "Snapshot"},
        "endPoint": {"taskType": "Cluster"},
        "critical": True,
    }
    # And the operator's own parser reads it.
    (parsed,) = parse_workflow_list(response.content).items
    assert parsed.status.phase == "Running"
    assert parsed.status.point_statuses[0].end_time_stamp is not None


async def test_idle_cluster_lists_nothing(launch: Launch) -> None:
    sim = await launch("idle")
    assert await sim.api.items() == []


async def test_show_one_and_an_unknown_one(launch: Launch) -> None:
    sim = await launch("success")
    (item,) = await sim.api.items()
    uid = item["metadata"]["uid"]
    shown = await sim.api.call("GET", sim.api.path(workflow_id=uid))
    assert shown.status_code == 200
    assert shown.json() == item
    missing = await sim.api.call("GET", sim.api.path(workflow_id="nope"))
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "CCE.01404001"


async def test_unknown_cluster_and_cluster_of_another_project_are_404(launch: Launch) -> None:
    sim = await launch("idle")
    response = await sim.api.list_workflows("00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    assert response.json()["error_code"] == "CCE.01404001"
    assert REQUEST_ID.match(response.headers["X-Request-Id"])
    other = "fedcba9876543210fedcba9876543210"
    await sim.api.control_ok("POST", "/credentials", {"projectId": other, "tokens": ["t2"]})
    response = await sim.api.call("GET", sim.api.path(project_id=other), token="t2")
    assert response.status_code == 404


async def test_create_then_refuse_a_second_while_unfinished(launch: Launch) -> None:
    sim = await launch("idle")
    body = {
        "kind": "WorkFlowTask",
        "apiVersion": "v3",
        "spec": {"clusterID": DEMO_CLUSTER_ID, "targetVersion": "v1.30.0-r0"},
    }
    created = await sim.api.call("POST", sim.api.path(), body)
    assert created.status_code == 201, created.text
    workflow = created.json()
    assert workflow["status"]["phase"] == "Init"
    assert workflow["spec"]["clusterVersion"] == "v1.28.3-r0"
    assert [i["metadata"]["uid"] for i in await sim.api.items()] == [workflow["metadata"]["uid"]]

    again = await sim.api.call("POST", sim.api.path(), body)
    assert again.status_code == 400
    assert again.json()["error_code"] == "CCE.01400001"

    sim.clock.advance(206)  # the success timeline is over
    after = await sim.api.call("POST", sim.api.path(), {"spec": {"targetVersion": "v1.31.0-r0"}})
    assert after.status_code == 201
    assert after.json()["spec"]["clusterVersion"] == "v1.30.0-r0"


async def test_create_validates_the_body(launch: Launch) -> None:
    sim = await launch("idle")
    for body in ({}, {"spec": {"targetVersion": 3}}, [1]):
        response = await sim.api.call("POST", sim.api.path(), body)
        assert response.status_code == 400, body
    wrong_cluster = {"spec": {"targetVersion": "v1", "clusterID": "other"}}
    assert (await sim.api.call("POST", sim.api.path(), wrong_cluster)).status_code == 400


async def test_cancel_follows_the_documented_rules(launch: Launch) -> None:
    sim = await launch("success")
    (item,) = await sim.api.items()
    path = sim.api.path(workflow_id=item["metadata"]["uid"])
    cancel = {"status": {"phase": "Cancel"}}

    bad = await sim.api.call("PATCH", path, {"status": {"phase": "Running"}})
    assert bad.status_code == 400

    sim.clock.advance(10)  # running: refused
    refused = await sim.api.call("PATCH", path, cancel)
    assert refused.status_code == 400
    assert "Running" in refused.json()["error_msg"]

    sim.clock.advance(1000)  # succeeded: refused
    assert (await sim.api.call("PATCH", path, cancel)).status_code == 400


async def test_cancel_in_init_and_pending_then_never_again(launch: Launch) -> None:
    sim = await launch("precheck-fails")
    (item,) = await sim.api.items()
    path = sim.api.path(workflow_id=item["metadata"]["uid"])
    sim.clock.advance(30)  # Pending
    response = await sim.api.call("PATCH", path, {"status": {"phase": "Cancel"}})
    assert response.status_code == 200
    assert response.json()["status"]["phase"] == "Cancel"
    again = await sim.api.call("PATCH", path, {"status": {"phase": "Cancel"}})
    assert again.status_code == 400

    await sim.api.control_ok("POST", f"/clusters/{DEMO_CLUSTER_ID}/workflows", {})
    (_, fresh) = await sim.api.items()
    init_path = sim.api.path(workflow_id=fresh["metadata"]["uid"])
    response = await sim.api.call("PATCH", init_path, {"status": {"phase": "Cancel"}})
    assert response.json()["status"]["phase"] == "Cancel"


async def test_single_object_items_globally_or_per_cluster(launch: Launch) -> None:
    sim = await launch("history")
    assert isinstance((await sim.api.list_workflows()).json()["items"], list)
    await sim.api.control_ok("PATCH", f"/clusters/{DEMO_CLUSTER_ID}", {"itemsShape": "single"})
    items = (await sim.api.list_workflows()).json()["items"]
    assert isinstance(items, dict)
    assert items["spec"]["clusterVersion"] == "v1.28.3-r0"  # the newest workflow
    await sim.api.control_ok("PATCH", f"/clusters/{DEMO_CLUSTER_ID}", {"itemsShape": None})
    await sim.api.control_ok("PUT", "/style", {"itemsShape": "single"})
    assert isinstance((await sim.api.list_workflows()).json()["items"], dict)
    assert len(parse_workflow_list((await sim.api.list_workflows()).content).items) == 1


async def test_status_style_errors_and_rfc3339_timestamps(launch: Launch) -> None:
    sim = await launch("success")
    await sim.api.control_ok(
        "PUT", "/style", {"errorStyle": "status", "timestampFormat": "rfc3339"}
    )
    failed = await sim.api.list_workflows(secret_key="wrong")
    assert failed.status_code == 401
    body = failed.json()
    assert (body["errorCode"], body["code"], body["reason"]) == (
        "CCE.01401001",
        401,
        "Unauthorized",
    )
    (item,) = await sim.api.items()
    assert item["metadata"]["creationTimestamp"] == "2023-11-14T22:13:20Z"


async def test_every_answer_carries_a_request_id(launch: Launch) -> None:
    sim = await launch("idle")
    responses = [
        await sim.api.http.get(sim.api.base_url + "/no/such/path"),
        await sim.api.http.delete(sim.api.base_url + sim.api.path()),
        await sim.api.list_workflows(token="bad"),
        await sim.api.list_workflows(token=DEMO_TOKEN),
        await sim.api.control("GET", "/health"),
    ]
    ids = [response.headers.get("X-Request-Id", "") for response in responses]
    assert all(REQUEST_ID.match(value) for value in ids), ids
    assert len(set(ids)) == len(ids)
    assert responses[0].json()["error_code"] == "CCE.01404001"
    assert responses[1].status_code == 405
