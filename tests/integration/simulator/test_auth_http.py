"""Authentication over HTTP, as a cloud client meets it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cce_upgrade_watch.simulator import DEMO_CLUSTER_ID, DEMO_TOKEN

from .conftest import OTHER_PROJECT, Launch


async def test_signed_and_token_requests_are_accepted(launch: Launch) -> None:
    sim = await launch("success")
    assert (await sim.api.list_workflows()).status_code == 200
    assert (await sim.api.list_workflows(token=DEMO_TOKEN)).status_code == 200


async def test_wrong_secret_key_is_401(launch: Launch) -> None:
    sim = await launch("success")
    response = await sim.api.list_workflows(secret_key="not-the-secret")
    assert response.status_code == 401
    assert response.json()["error_code"] == "CCE.01401001"
    assert "signature does not match" in response.json()["error_msg"]


async def test_unknown_access_key_and_token_are_401(launch: Launch) -> None:
    sim = await launch("idle")
    assert (await sim.api.list_workflows(access_key="NOSUCHKEY")).status_code == 401
    assert (await sim.api.list_workflows(token="expired")).status_code == 401
    bare = await sim.api.http.get(sim.api.base_url + sim.api.path())
    assert bare.status_code == 401


async def test_stale_or_future_date_is_401(launch: Launch) -> None:
    sim = await launch("idle")
    now = datetime.now(UTC)
    assert (await sim.api.list_workflows(signed_at=now - timedelta(minutes=10))).status_code == 200
    for skew in (timedelta(minutes=-20), timedelta(minutes=20)):
        response = await sim.api.list_workflows(signed_at=now + skew)
        assert response.status_code == 401
        assert response.json()["error_code"] == "APIGW.0301"
        assert "signature expired" in response.json()["error_msg"]


async def test_moving_simulated_time_does_not_make_signatures_stale(launch: Launch) -> None:
    sim = await launch("idle")
    await sim.api.control_ok("POST", "/time/advance", {"seconds": 7 * 86400})
    assert (await sim.api.list_workflows()).status_code == 200


async def test_another_project_is_403_even_for_an_unknown_cluster(launch: Launch) -> None:
    sim = await launch("idle")
    path = sim.api.path(project_id=OTHER_PROJECT)
    response = await sim.api.call("GET", path)
    assert response.status_code == 403
    assert response.json()["error_code"] == "CCE.01403001"
    unknown = sim.api.path("00000000-0000-0000-0000-000000000000", project_id=OTHER_PROJECT)
    assert (await sim.api.call("GET", unknown)).status_code == 403
    assert (await sim.api.call("GET", path, token=DEMO_TOKEN)).status_code == 403


async def test_x_project_id_differing_from_the_path_is_403(launch: Launch) -> None:
    sim = await launch("idle")
    response = await sim.api.list_workflows(project_header=OTHER_PROJECT)
    assert response.status_code == 403


async def test_a_tampered_body_is_401(launch: Launch) -> None:
    sim = await launch("idle")
    # Sign one body, send another: the signature covers the payload hash.
    from cce_upgrade_watch.cce.signing import DATE_FORMAT, sign

    path = sim.api.path()
    headers = {
        "Host": sim.api.base_url.removeprefix("http://"),
        "X-Sdk-Date": datetime.now(UTC).strftime(DATE_FORMAT),
        "X-Project-Id": sim.api.project_id,
        "Content-Type": "application/json",
    }
    signed = sign(
        method="POST",
        path=path,
        query=[],
        headers=headers,
        body=b'{"spec":{"targetVersion":"v1"}}',
        secret_key=sim.api.secret_key,
    )
    headers["Authorization"] = signed.authorization(sim.api.access_key)
    response = await sim.api.http.post(
        sim.api.base_url + path, content=b'{"spec":{"targetVersion":"v2"}}', headers=headers
    )
    assert response.status_code == 401


async def test_temporary_credentials_from_the_control_api(launch: Launch) -> None:
    sim = await launch("idle")
    await sim.api.control_ok(
        "POST",
        "/credentials",
        {
            "projectId": sim.api.project_id,
            "accessKey": "TEMPORARYAK",
            "secretKey": "temporary-sk",
            "securityToken": "sts-token",
        },
    )
    keys = {"access_key": "TEMPORARYAK", "secret_key": "temporary-sk"}
    assert (await sim.api.list_workflows(**keys)).status_code == 401
    with_token = await sim.api.list_workflows(
        **keys, extra_headers={"X-Security-Token": "sts-token"}
    )
    assert with_token.status_code == 200


async def test_auth_failures_are_counted_per_cluster(launch: Launch) -> None:
    sim = await launch("idle")
    await sim.api.list_workflows(secret_key="wrong")
    await sim.api.list_workflows(token="wrong")
    await sim.api.list_workflows()
    log = await sim.api.control_ok("GET", f"/clusters/{DEMO_CLUSTER_ID}/requests")
    assert (log["count"], log["authFailures"]) == (3, 2)
    assert log["statuses"] == {"200": 1, "401": 2}
