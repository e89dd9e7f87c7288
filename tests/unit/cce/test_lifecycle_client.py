"""The lifecycle calls against a real HTTP server on 127.0.0.1: paths, signing,
retries and errors are the workflow list's; 404 and 403 mean "not available"."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from cce_upgrade_watch.cce.auth import AkSkAuth
from cce_upgrade_watch.cce.client import CceClient, RetryPolicy
from cce_upgrade_watch.cce.errors import ApiUnavailable, CceApiError, InvalidResponse
from cce_upgrade_watch.cce.lifecycle import (
    LIST_PLANS,
    LifecycleApi,
    is_not_available,
    not_available_reason,
)
from tests.unit.cce.conftest import ACCESS_KEY, CLUSTER_ID, PROJECT_ID, SECRET_KEY, SECRETS
from tests.unit.cce.scripted_server import Reply, ScriptedServer

BASE = f"/autopilot/v3/projects/{PROJECT_ID}/clusters/{CLUSTER_ID}"
Observed = list[tuple[str, str, float]]


@pytest.fixture
def observed() -> Observed:
    return []


@pytest.fixture
async def api(server: ScriptedServer, observed: Observed) -> AsyncIterator[LifecycleApi]:
    async with CceClient(
        retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=1.0),
        on_request=lambda *call: observed.append(call),
    ) as client:
        yield LifecycleApi(
            client,
            PROJECT_ID,
            CLUSTER_ID,
            auth=AkSkAuth(ACCESS_KEY, SECRET_KEY, PROJECT_ID),
            endpoint=server.url,
        )


async def test_every_call_is_a_signed_get_of_the_sdk_path(
    api: LifecycleApi, server: ScriptedServer, observed: Observed
) -> None:
    server.script(Reply(200, {}))
    await api.show_precheck("task/../1")
    await api.list_precheck_tasks()
    await api.list_upgrade_plans()
    await api.show_maintenance_window()
    await api.show_upgrade_info()
    await api.list_snapshot_tasks()
    assert [(seen.method, seen.raw_path) for seen in server.seen] == [
        ("GET", BASE + "/operation/precheck/tasks/task%2F..%2F1"),
        ("GET", BASE + "/operation/precheck/tasks"),
        ("GET", BASE + "/upgradeplans"),
        ("GET", BASE + "/maintenancewindows"),
        ("GET", BASE + "/upgradeinfo"),
        ("GET", BASE.replace("/v3/", "/v3.1/") + "/operation/snapshot/tasks"),
    ]
    assert all(
        seen.headers["authorization"].startswith(f"SDK-HMAC-SHA256 Access={ACCESS_KEY}")
        for seen in server.seen
    )
    assert [operation for operation, _, _ in observed] == [
        "show pre-check",
        "list pre-check tasks",
        "list upgrade plans",
        "show maintenance window",
        "show upgrade info",
        "list master snapshot tasks",
    ]


async def test_answers_are_parsed(api: LifecycleApi, server: ScriptedServer) -> None:
    server.script(
        Reply(200, {"kind": "List", "items": {"spec": {"targetVersion": "v1.28.3-r1"}}}),
        Reply(200, {"weekly_period": "Friday", "start_time": "02:00", "duration_hours": 4}),
    )
    (plan,) = await api.list_upgrade_plans()
    assert plan.spec.target_version == "v1.28.3-r1"
    window = await api.show_maintenance_window()
    assert window.weekly_period == "Friday"


async def test_unavailable_answers_are_retried_like_the_workflow_list(
    api: LifecycleApi, server: ScriptedServer
) -> None:
    server.script(
        Reply(503, {"error_code": "CCE.01500001", "error_msg": "busy"}),
        Reply(200, {"spec": {"versionInfo": {"release": "v1.28.3"}}}),
    )
    info = await api.show_upgrade_info()
    assert info.spec.version_info.release == "v1.28.3"
    assert len(server.seen) == 2
    server.script(Reply(503, {"error_code": "CCE.01500001", "error_msg": "busy"}))
    with pytest.raises(ApiUnavailable) as raised:
        await api.show_upgrade_info()
    assert not is_not_available(raised.value)


@pytest.mark.parametrize(
    ("status", "body", "why"),
    [
        (404, {"error_code": "APIGW.0101", "error_msg": "The API does not exist"},
         "this region or endpoint does not offer it (HTTP 404 APIGW.0101, request id r-1)"),
        (403, {"error_code": "CCE.01403001", "error_msg": f"no permission {SECRET_KEY}"},
         "this identity may not read it (HTTP 403 CCE.01403001, request id r-1)"),
    ],
)  # fmt: skip
async def test_404_and_403_are_not_available(
    api: LifecycleApi, server: ScriptedServer, status: int, body: dict[str, Any], why: str
) -> None:
    server.script(Reply(status, body, {"X-Request-Id": "r-1"}))
    with pytest.raises(CceApiError) as raised:
        await api.list_upgrade_plans()
    assert is_not_available(raised.value)
    assert not_available_reason(raised.value) == why
    assert raised.value.operation == LIST_PLANS
    assert [s for s in SECRETS if s in str(raised.value)] == []


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b"[1, 2]", "not a JSON object"),
        (b"<html>login</html>", "not a JSON object"),
        (b'{"error_code": "CCE.01500001", "error_msg": "oops"}', "an error body"),
    ],
)
async def test_a_success_that_is_no_answer_is_invalid(
    api: LifecycleApi, server: ScriptedServer, body: bytes, complaint: str
) -> None:
    server.script(Reply(200, body, {"X-Request-Id": "r-2"}))
    with pytest.raises(InvalidResponse, match=complaint) as raised:
        await api.show_maintenance_window()
    assert "r-2" in str(raised.value)


async def test_an_empty_task_id_is_refused_before_any_call(
    api: LifecycleApi, server: ScriptedServer
) -> None:
    with pytest.raises(ValueError, match="task_id"):
        await api.show_precheck("")
    assert server.seen == []
