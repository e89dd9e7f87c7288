"""CceClient against a real HTTP server on 127.0.0.1 (no httpx mocking)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from cce_upgrade_watch import __version__
from cce_upgrade_watch.cce.auth import AkSkAuth, TokenAuth
from cce_upgrade_watch.cce.client import CceClient, RetryPolicy, _retry_after
from cce_upgrade_watch.cce.errors import (
    ApiUnavailable,
    CceApiError,
    ClockSkew,
    ClusterNotFound,
    CredentialsRejected,
    EndpointError,
    Forbidden,
    InvalidResponse,
    RequestRejected,
    Throttled,
    WorkflowParseError,
)
from tests.unit.cce.conftest import (
    ACCESS_KEY,
    CLUSTER_ID,
    PROJECT_ID,
    SECRET_KEY,
    SECRETS,
    SECURITY_TOKEN,
    TOKEN,
    WORKFLOWS_PATH,
    workflow,
    workflow_list,
)
from tests.unit.cce.scripted_server import Reply, ScriptedServer

FAST_RETRY = RetryPolicy(attempts=3, base_delay=0.01, max_delay=2.0)
Observed = list[tuple[str, str, float]]


@pytest.fixture
def observed() -> Observed:
    return []


@pytest.fixture
async def client(observed: Observed) -> AsyncIterator[CceClient]:
    async with CceClient(
        retry=FAST_RETRY, on_request=lambda *call: observed.append(call)
    ) as client:
        yield client


async def _list(client: CceClient, server: ScriptedServer, auth: httpx.Auth | None = None) -> Any:
    return await client.list_upgrade_workflows(
        PROJECT_ID, CLUSTER_ID, endpoint=server.url, auth=auth or TokenAuth(TOKEN)
    )


# -- success ----------------------------------------------------------------------


async def test_lists_workflows_with_aksk(
    client: CceClient, server: ScriptedServer, observed: Observed
) -> None:
    server.script(Reply(200, workflow_list(workflow("w-1"), workflow("w-2", phase="Running"))))
    auth = AkSkAuth(ACCESS_KEY, SECRET_KEY, PROJECT_ID, SECURITY_TOKEN)
    workflows = await _list(client, server, auth)

    assert [w.metadata.uid for w in workflows] == ["w-1", "w-2"]
    assert workflows[1].status.phase == "Running"
    (seen,) = server.seen
    assert (seen.method, seen.raw_path) == ("GET", WORKFLOWS_PATH)
    assert seen.headers["authorization"].startswith(f"SDK-HMAC-SHA256 Access={ACCESS_KEY}, ")
    assert seen.headers["x-project-id"] == PROJECT_ID
    assert seen.headers["x-security-token"] == SECURITY_TOKEN
    assert seen.headers["user-agent"] == f"cce-upgrade-watch/{__version__}"
    assert [(op, status) for op, status, _ in observed] == [("list upgrade workflows", "200")]
    assert observed[0][2] >= 0


async def test_accepts_the_single_object_items_of_the_doc(
    client: CceClient, server: ScriptedServer
) -> None:
    server.script(Reply(200, {"kind": "List", "apiVersion": "v3", "items": workflow("only")}))
    assert [w.metadata.uid for w in await _list(client, server)] == ["only"]


async def test_each_call_uses_its_own_credentials(
    client: CceClient, server: ScriptedServer
) -> None:
    await _list(client, server, TokenAuth("token-one"))
    await _list(client, server, TokenAuth("token-two"))
    assert [s.headers["x-auth-token"] for s in server.seen] == ["token-one", "token-two"]


async def test_connections_are_kept_alive_between_calls(
    client: CceClient, server: ScriptedServer
) -> None:
    for _ in range(5):
        await _list(client, server)
    assert len({seen.client_port for seen in server.seen}) == 1


async def test_ids_cannot_add_path_segments(client: CceClient, server: ScriptedServer) -> None:
    await client.list_upgrade_workflows(
        "../../x", "a/b?c", endpoint=server.url, auth=TokenAuth(TOKEN)
    )
    assert server.seen[0].raw_path == (
        "/autopilot/v3/projects/..%2F..%2Fx/clusters/a%2Fb%3Fc/operation/upgradeworkflows"
    )


# -- errors -----------------------------------------------------------------------

DOCUMENTED_BODY = {"error_code": "CCE.01401001", "error_msg": "Authentication failed"}
STATUS_BODY = {
    "kind": "Status",
    "apiVersion": "v1",
    "status": "Failure",
    "message": 'clusters.cce.io "x" not found',
    "reason": "NotFound",
    "code": 404,
    "errorCode": "CCE.01404001",
    "errorMessage": "Resource not found",
}


@pytest.mark.parametrize(
    ("status", "body", "error", "reason", "code", "msg", "message"),
    [
        (401, DOCUMENTED_BODY, CredentialsRejected, "CredentialsInvalid", "CCE.01401001",
         "Authentication failed", None),
        (403, {"error_code": "CCE.01403001", "error_msg": "No permission"}, Forbidden,
         "Forbidden", "CCE.01403001", "No permission", None),
        (404, STATUS_BODY, ClusterNotFound, "ClusterNotFound", "CCE.01404001",
         "Resource not found", 'clusters.cce.io "x" not found'),
        (400, {"error_code": "CCE.01400001", "error_msg": "Invalid request"}, RequestRejected,
         "RequestRejected", "CCE.01400001", "Invalid request", None),
        (429, {"error": {"code": "APIGW.0308", "message": "Throttled"}}, Throttled, "Throttled",
         "APIGW.0308", "Throttled", None),
        (500, b"<html>oops</html>", ApiUnavailable, "ApiUnavailable", None, None, None),
        (503, {"errorCode": "CCE.01500001", "message": "try later"}, ApiUnavailable,
         "ApiUnavailable", "CCE.01500001", "try later", None),
    ],
)  # fmt: skip
async def test_http_errors_become_typed_exceptions(
    server: ScriptedServer,
    status: int,
    body: Any,
    error: type[CceApiError],
    reason: str,
    code: str | None,
    msg: str | None,
    message: str | None,
) -> None:
    server.script(Reply(status, body, {"X-Request-Id": "req-42"}))
    async with CceClient(retry=RetryPolicy(attempts=1)) as client:
        with pytest.raises(error) as caught:
            await _list(client, server)
    exc = caught.value
    assert exc.reason == reason
    assert (exc.status_code, exc.error_code, exc.error_msg, exc.message) == (
        status,
        code,
        msg,
        message,
    )
    assert exc.request_id == "req-42"
    text = str(exc)
    assert "\n" not in text
    assert f"HTTP {status}" in text
    assert "[request id req-42]" in text
    for part in (code, msg, message):
        assert part is None or part in text


async def test_error_line_reads_well(server: ScriptedServer) -> None:
    server.script(Reply(401, DOCUMENTED_BODY, {"X-Request-Id": "5f1c0a"}))
    async with CceClient(retry=RetryPolicy(attempts=1)) as client:
        with pytest.raises(CredentialsRejected) as caught:
            await _list(client, server)
    assert str(caught.value) == (
        "list upgrade workflows: credentials rejected: HTTP 401 CCE.01401001 "
        '"Authentication failed" [request id 5f1c0a]'
    )


async def test_secrets_echoed_by_the_server_are_scrubbed(server: ScriptedServer) -> None:
    # A server that echoes what it was sent (or a proxy's error page that does).
    echo = f"bad signature from sk {SECRET_KEY} token {SECURITY_TOKEN}\nsecond line {TOKEN}"
    server.script(Reply(401, {"error_code": "X", "error_msg": echo, "message": TOKEN}))
    async with CceClient(retry=RetryPolicy(attempts=1)) as client:
        for auth, secrets in (
            (AkSkAuth(ACCESS_KEY, SECRET_KEY, PROJECT_ID, SECURITY_TOKEN), SECRETS[:2]),
            (TokenAuth(TOKEN), SECRETS[2:]),
        ):
            with pytest.raises(CredentialsRejected) as caught:
                await _list(client, server, auth)
            text = str(caught.value) + repr(caught.value) + repr(vars(caught.value))
            assert [secret for secret in secrets if secret in text] == []
            assert "****" in text
            assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("body", "complaint"),
    [
        (b"<html>gateway login</html>", "not JSON"),
        (b"[]", "JSON array"),
        ({"items": [{"metadata": {"creationTimestamp": "soon"}}]}, "creationTimestamp"),
        ({"error_code": "CCE.01500001", "error_msg": "oops"}, "error body in a success"),
    ],
)
async def test_bad_success_bodies_are_invalid_responses(
    client: CceClient, server: ScriptedServer, body: Any, complaint: str
) -> None:
    server.script(Reply(200, body, {"X-Request-Id": "r-1"}))
    with pytest.raises(InvalidResponse) as caught:
        await _list(client, server)
    assert isinstance(caught.value, WorkflowParseError)
    assert caught.value.reason == "InvalidResponse"
    assert complaint in str(caught.value)
    assert "r-1" in str(caught.value)
    assert len(server.seen) == 1  # not retried


async def test_a_redirect_is_not_followed(client: CceClient, server: ScriptedServer) -> None:
    server.script(Reply(302, b"", {"Location": "https://login.example.com/"}))
    with pytest.raises(InvalidResponse, match="HTTP 302"):
        await _list(client, server)


async def test_dropped_connection_is_unavailable(
    client: CceClient, server: ScriptedServer, observed: Observed
) -> None:
    server.script(Reply(drop=True))
    with pytest.raises(ApiUnavailable, match="connection was dropped before a complete answer"):
        await _list(client, server)
    assert len(server.seen) == 3  # retried, then given up
    assert {status for _, status, _ in observed} == {"network"}


async def test_refused_connection_is_unavailable(client: CceClient) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    with pytest.raises(ApiUnavailable):
        await client.list_upgrade_workflows(
            PROJECT_ID, CLUSTER_ID, endpoint=f"http://127.0.0.1:{port}", auth=TokenAuth(TOKEN)
        )


async def test_timeout_is_unavailable(server: ScriptedServer, observed: Observed) -> None:
    server.script(Reply(hold=True))
    async with CceClient(
        timeout=httpx.Timeout(0.2),
        retry=RetryPolicy(attempts=1),
        on_request=lambda *c: observed.append(c),
    ) as client:
        with pytest.raises(ApiUnavailable, match="no complete answer within"):
            await _list(client, server)
    assert [status for _, status, _ in observed] == ["timeout"]


async def test_bad_endpoints_fail_before_any_request(
    client: CceClient, server: ScriptedServer
) -> None:
    with pytest.raises(EndpointError, match="plain http"):
        await client.list_upgrade_workflows(
            PROJECT_ID, CLUSTER_ID, endpoint="http://10.1.2.3", auth=TokenAuth(TOKEN)
        )
    with pytest.raises(EndpointError, match="region"):
        await client.list_upgrade_workflows(
            PROJECT_ID, CLUSTER_ID, region="Mars-1", auth=TokenAuth(TOKEN)
        )
    assert server.seen == []


# -- retries ----------------------------------------------------------------------


async def test_unavailable_is_retried_until_it_works(
    client: CceClient, server: ScriptedServer, observed: Observed
) -> None:
    server.script(Reply(503), Reply(502), Reply(200, workflow_list(workflow("w"))))
    assert [w.metadata.uid for w in await _list(client, server)] == ["w"]
    assert [status for _, status, _ in observed] == ["503", "502", "200"]


@pytest.mark.parametrize("attempts", [1, 3, 5])
async def test_retries_are_bounded(server: ScriptedServer, attempts: int) -> None:
    server.script(Reply(503, {"error_code": "CCE.01500001", "error_msg": "down"}))
    policy = RetryPolicy(attempts=attempts, base_delay=0.001)
    async with CceClient(retry=policy) as client:
        with pytest.raises(ApiUnavailable, match=r"CCE\.01500001"):
            await _list(client, server)
    assert len(server.seen) == attempts


@pytest.mark.parametrize("status", [401, 403, 404, 400])
async def test_client_errors_are_not_retried(
    client: CceClient, server: ScriptedServer, status: int
) -> None:
    server.script(Reply(status))
    with pytest.raises(CceApiError):
        await _list(client, server)
    assert len(server.seen) == 1


async def test_retry_after_is_honoured(server: ScriptedServer) -> None:
    server.script(
        Reply(429, {"error_code": "APIGW.0308"}, {"Retry-After": "1"}),
        Reply(200, workflow_list()),
    )
    # No jitter of its own, so any wait comes from Retry-After.
    async with CceClient(retry=RetryPolicy(attempts=3, base_delay=0.0)) as client:
        assert await _list(client, server) == []
    first, second = server.seen
    assert second.at - first.at >= 1.0


async def test_a_retry_after_beyond_the_policy_is_left_to_the_caller(
    server: ScriptedServer,
) -> None:
    server.script(Reply(429, {"error_code": "APIGW.0308"}, {"Retry-After": "120"}))
    started = time.monotonic()
    async with CceClient(retry=RetryPolicy(attempts=3, max_delay=20)) as client:
        with pytest.raises(Throttled) as caught:
            await _list(client, server)
    assert caught.value.retry_after == 120
    assert "(retry after 120s)" in str(caught.value)
    assert len(server.seen) == 1
    assert time.monotonic() - started < 5


async def test_backoff_is_exponential_with_full_jitter(server: ScriptedServer) -> None:
    server.script(Reply(503))
    delays: list[float] = []
    bounds: list[tuple[float, float]] = []

    async def record_sleep(seconds: float) -> None:
        delays.append(seconds)

    def top_of_range(low: float, high: float) -> float:
        bounds.append((low, high))
        return high

    policy = RetryPolicy(attempts=4, base_delay=0.5, max_delay=1.5)
    async with CceClient(retry=policy, sleep=record_sleep, uniform=top_of_range) as client:
        with pytest.raises(ApiUnavailable):
            await _list(client, server)
    assert bounds == [(0.0, 0.5), (0.0, 1.0), (0.0, 1.5)]  # doubling, capped
    assert delays == [0.5, 1.0, 1.5]


@pytest.mark.parametrize("method", ["create", "cancel"])
async def test_writes_are_never_retried(
    client: CceClient, server: ScriptedServer, observed: Observed, method: str
) -> None:
    server.script(Reply(503), Reply(200, workflow("w")))
    if method == "create":
        call = client.create_upgrade_workflow(
            PROJECT_ID,
            CLUSTER_ID,
            cluster_version="v1.28.3-r0",
            target_version="v1.29.1-r0",
            endpoint=server.url,
            auth=TokenAuth(TOKEN),
        )
    else:
        call = client.cancel_upgrade_workflow(
            PROJECT_ID, CLUSTER_ID, "w", endpoint=server.url, auth=TokenAuth(TOKEN)
        )
    with pytest.raises(ApiUnavailable):
        await call
    assert [s.method for s in server.seen] == ["POST" if method == "create" else "PATCH"]
    assert len(observed) == 1


async def test_create_and_cancel_send_the_documented_bodies(
    client: CceClient, server: ScriptedServer
) -> None:
    server.script(
        Reply(201, workflow("w-new", phase="Init")), Reply(200, workflow("w-new", phase="Cancel"))
    )
    auth = AkSkAuth(ACCESS_KEY, SECRET_KEY, PROJECT_ID)
    created = await client.create_upgrade_workflow(
        PROJECT_ID, CLUSTER_ID, cluster_version="v1.28.3-r0", target_version="v1.29.1-r0",
        endpoint=server.url, auth=auth,
    )  # fmt: skip
    cancelled = await client.cancel_upgrade_workflow(
        PROJECT_ID, CLUSTER_ID, "w-new", endpoint=server.url, auth=auth
    )
    assert (created.status.phase, cancelled.status.phase) == ("Init", "Cancel")
    post, patch = server.seen
    assert post.raw_path == WORKFLOWS_PATH
    assert patch.raw_path == WORKFLOWS_PATH + "/w-new"
    assert post.headers["content-type"] == "application/json"
    assert post.body == (
        b'{"kind": "WorkFlowTask", "apiVersion": "v3", "spec": {"clusterID": "'
        + CLUSTER_ID.encode()
        + b'", "clusterVersion": "v1.28.3-r0", "targetVersion": "v1.29.1-r0"}}'
    )
    assert patch.body == b'{"status": {"phase": "Cancel"}}'


def test_retry_after_header_values() -> None:
    assert _retry_after("3") == 3.0
    assert _retry_after(" 0.5 ") == 0.5
    assert _retry_after("-4") == 0.0
    assert _retry_after(None) is None
    assert _retry_after("soon") is None
    assert _retry_after("nan") is None
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    seconds = _retry_after(in_a_minute)
    assert seconds is not None
    assert 55 <= seconds <= 60


# -- sharing ----------------------------------------------------------------------


def _holding(count: int) -> Callable[[ScriptedServer], bool]:
    return lambda server: server.held >= count


async def test_in_flight_requests_are_limited_for_all_callers(server: ScriptedServer) -> None:
    limit, calls = 4, 12
    server.script(Reply(200, workflow_list(), hold=True))
    async with CceClient(max_in_flight=limit, retry=FAST_RETRY) as client:
        tasks = [asyncio.create_task(_list(client, server)) for _ in range(calls)]
        for released in range(calls):
            expected_held = min(limit, calls - released)
            await asyncio.to_thread(server.wait_for, _holding(expected_held))
            server.release_one()
        await asyncio.gather(*tasks)
    assert len(server.seen) == calls
    assert server.max_in_flight == limit


async def test_a_failing_metrics_hook_does_not_fail_the_call(server: ScriptedServer) -> None:
    def broken(operation: str, status: str, seconds: float) -> None:
        raise RuntimeError("metrics bug")

    async with CceClient(on_request=broken) as client:
        assert await _list(client, server) == []


# -- no probing of the inside (issue 11.5) ------------------------------------------


async def test_a_refused_connection_says_only_that(
    client: CceClient, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ApiUnavailable) as caught:
        await client.list_upgrade_workflows(
            PROJECT_ID, CLUSTER_ID, endpoint=f"http://127.0.0.1:{port}", auth=TokenAuth(TOKEN)
        )
    text = str(caught.value)
    assert "could not connect to the endpoint" in text
    assert str(port) not in text
    assert "refused" not in text.lower()
    # The detail is in the operator's log, for the admin.
    assert str(port) in caplog.text


async def test_a_tls_failure_says_only_that(
    client: CceClient, server: ScriptedServer, caplog: pytest.LogCaptureFixture
) -> None:
    # https:// to a plain-HTTP server: the handshake fails (as with a bad certificate).
    port = server.url.rsplit(":", 1)[1]
    with pytest.raises(ApiUnavailable) as caught:
        await client.list_upgrade_workflows(
            PROJECT_ID, CLUSTER_ID, endpoint=f"https://localhost:{port}", auth=TokenAuth(TOKEN)
        )
    text = str(caught.value)
    assert "TLS handshake failed" in text
    assert port not in text
    assert "ssl" not in text.lower().replace("tls", "")
    assert port in caplog.text


# -- the gateway's codes (issue 10.9) -------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "reason"),
    [
        (
            404,
            {"error_code": "APIGW.0101", "error_msg": "The API does not exist"},
            "InvalidEndpoint",
        ),
        (
            404,
            {"error_code": "APIG.0101", "error_msg": "The API does not exist."},
            "InvalidEndpoint",
        ),
        (404, {"error_code": "CCE.01404001", "error_msg": "cluster not found"}, "ClusterNotFound"),
        (404, b"<html>not found</html>", "ClusterNotFound"),
        (
            401,
            {
                "error_code": "APIGW.0303",
                "error_msg": "Incorrect app authentication information: signature expired, "
                "signature time:20230527T000431Z,server time:20230527T020608Z",
            },
            "ClockSkew",
        ),
        (
            401,
            {
                "error_code": "APIGW.0301",
                "error_msg": "Incorrect IAM authentication information: verify aksk signature fail",
            },
            "CredentialsInvalid",
        ),
        (401, {"errorCode": "X", "message": "X-Sdk-Date is out of range"}, "ClockSkew"),
    ],
)
async def test_errors_are_named_by_their_error_code(
    client: CceClient, server: ScriptedServer, status: int, body: Any, reason: str
) -> None:
    server.script(Reply(status, body))
    with pytest.raises(CceApiError) as caught:
        await _list(client, server)
    assert caught.value.reason == reason


async def test_clock_skew_says_by_how_much_and_which_clock(
    client: CceClient, server: ScriptedServer
) -> None:
    server.script(
        Reply(
            401,
            {
                "error_code": "APIGW.0301",
                "error_msg": "Incorrect IAM authentication information: calc aksk signature "
                "fail:signature expired, signature time:20211217T064303Z,server time:"
                "20211217T065804Z",
            },
        )
    )
    with pytest.raises(ClockSkew) as caught:
        await _list(client, server)
    text = str(caught.value)
    assert "operator's clock is off (about 15 minutes behind the server's)" in text
    assert "20211217" not in text
    assert len(server.seen) == 1  # not retried at once: a clock is not fixed in seconds


# -- bounded memory (issue 11.2, 10.7) ------------------------------------------------


async def test_the_answer_cache_is_bounded_by_bytes(server: ScriptedServer) -> None:
    big = workflow_list(*(workflow(f"w-{i}") for i in range(20)))
    server.script(Reply(200, big))
    size = len(Reply(200, big).encoded())
    async with CceClient(max_remembered_bytes=3 * size) as client:
        for index in range(10):
            cluster = f"00000000-0000-0000-0000-{index:012d}"
            await client.list_upgrade_workflows(
                PROJECT_ID, cluster, endpoint=server.url, auth=TokenAuth(TOKEN)
            )
            assert client.remembered_bytes <= 3 * size
        assert client.remembered_bytes == 3 * size


async def test_an_object_without_items_is_invalid(
    client: CceClient, server: ScriptedServer
) -> None:
    server.script(Reply(200, {}))
    with pytest.raises(InvalidResponse, match="no 'items'"):
        await _list(client, server)
    server.script(Reply(200, {"kind": "List", "apiVersion": "v3", "items": []}))
    assert await _list(client, server) == []


async def test_dropped_fields_are_reported_with_the_workflows(
    client: CceClient, server: ScriptedServer
) -> None:
    body = workflow_list(workflow("w", points=[{"taskType": "A", "startTimeStamp": "1700815155"}]))
    server.script(Reply(200, body))
    for _ in range(2):  # the second answer is the same bytes: served from the cache
        workflows = await _list(client, server)
        assert [w.metadata.uid for w in workflows] == ["w"]
        assert [(d.field, d.count) for d in workflows.dropped] == [("startTimeStamp", 1)]
