"""The status patch and the Event create over aiohttp (`kubewrites.py`), against a
real HTTP server on loopback that answers as the API server would: what is sent
(method, path, field manager, content type, the configuration's token), what each
answer means, a rotated token, and failures that name no secret."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import kubernetes
import pytest
from aiohttp import web

from cce_upgrade_watch import kubewrites
from cce_upgrade_watch.events import Event, EventReason, EventType
from cce_upgrade_watch.kubeapi import KubeApi, KubeApiRefused
from cce_upgrade_watch.kubewrites import KubeWriteError, KubeWriter
from cce_upgrade_watch.pollloop import RESOURCE_VERSION_KEY, StatusRejected

TOKEN = "s3cr3t-token-value"
STATUS_PATH = "/apis/cce.upgradewatch.io/v1alpha1/namespaces/ns/cceupgradewatches/w1/status"
EVENTS_PATH = "/api/v1/namespaces/ns/events"
INVOLVED = {"metadata": {"name": "w1", "namespace": "ns", "uid": "u-1"}}


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeApiServer:
    """Answers each request with the next of `answers` (status, JSON body)."""

    answers: list[tuple[int, Any]] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    stall: asyncio.Event | None = None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(
            Seen(
                request.method,
                request.path,
                dict(request.query),
                dict(request.headers),
                json.loads(await request.read()),
            )
        )
        if self.stall is not None:
            await self.stall.wait()
        status, body = self.answers.pop(0)
        return web.json_response(body, status=status)


@pytest.fixture
async def api_server() -> AsyncIterator[tuple[FakeApiServer, str]]:
    fake = FakeApiServer()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield fake, f"http://127.0.0.1:{port}"
    finally:
        if fake.stall is not None:
            fake.stall.set()
        await runner.cleanup()


def configuration(host: str, token: str = TOKEN) -> kubernetes.client.Configuration:
    config = kubernetes.client.Configuration()
    config.host = host
    config.api_key = {"authorization": token}
    config.api_key_prefix = {"authorization": "Bearer"}
    return config


def stored(status: dict[str, Any], version: str = "42") -> dict[str, Any]:
    return {"metadata": {"name": "w1", "resourceVersion": version}, "status": status}


def status_error(code: int, message: str) -> dict[str, Any]:
    return {"kind": "Status", "status": "Failure", "code": code, "message": message}


async def with_kube(host: str, use: Callable[[KubeApi], Awaitable[Any]]) -> Any:
    kube = KubeApi(configuration(host))
    try:
        return await use(kube)
    finally:
        await kube.aclose()


async def test_a_status_patch_is_a_merge_patch_of_status_by_our_field_manager(
    api_server: tuple[FakeApiServer, str],
) -> None:
    fake, host = api_server
    fake.answers.append((200, stored({"phase": "Running", "extra": "x"})))
    result = await with_kube(host, lambda kube: kube.patch_status("ns", "w1", {"phase": "Running"}))
    assert result == {"phase": "Running", "extra": "x", RESOURCE_VERSION_KEY: "42"}
    (request,) = fake.seen
    assert (request.method, request.path) == ("PATCH", STATUS_PATH)
    assert request.query == {"fieldManager": "cce-upgrade-watch"}
    assert request.headers["Content-Type"] == "application/merge-patch+json"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["User-Agent"].startswith("cce-upgrade-watch/")
    assert request.body == {"status": {"phase": "Running"}}


async def test_a_status_patch_of_a_deleted_object_is_none(
    api_server: tuple[FakeApiServer, str],
) -> None:
    fake, host = api_server
    fake.answers.append((404, status_error(404, "not found")))
    assert await with_kube(host, lambda kube: kube.patch_status("ns", "w1", {"a": 1})) is None


@pytest.mark.parametrize("code", [413, 422])
async def test_a_status_the_api_server_refuses_is_rejected_with_its_message(
    api_server: tuple[FakeApiServer, str], code: int
) -> None:
    fake, host = api_server
    fake.answers.append((code, status_error(code, "status.phase: Unsupported   value")))
    with pytest.raises(StatusRejected) as raised:
        await with_kube(host, lambda kube: kube.patch_status("ns", "w1", {"a": 1}))
    assert str(raised.value) == f"HTTP {code}: status.phase: Unsupported value"


@pytest.mark.parametrize("code", [409, 429, 500, 503])
async def test_a_status_patch_that_may_succeed_later_raises_for_a_retry(
    api_server: tuple[FakeApiServer, str], code: int
) -> None:
    fake, host = api_server
    fake.answers.append((code, status_error(code, "try again")))
    with pytest.raises(KubeApiRefused, match=f"HTTP {code}: try again"):
        await with_kube(host, lambda kube: kube.patch_status("ns", "w1", {"a": 1}))


async def test_a_rotated_token_is_read_again_once_after_a_401(
    api_server: tuple[FakeApiServer, str],
) -> None:
    """In a Pod the official client's refresh hook re-reads the projected token. The
    writer reuses what it read for a few seconds; a 401 means that is stale: read
    it again and send once more."""
    fake, host = api_server
    fake.answers += [(200, stored({"a": 1})), (401, status_error(401, "no")), (200, stored({}))]
    config = configuration(host, token="old")
    current = {"token": "old"}

    def refresh(conf: kubernetes.client.Configuration) -> None:
        conf.api_key["authorization"] = current["token"]

    config.refresh_api_key_hook = refresh  # type: ignore[assignment]
    kube = KubeApi(config)
    try:
        await kube.patch_status("ns", "w1", {"a": 1})
        current["token"] = "new"  # rotated: the cached "old" is refused next
        assert await kube.patch_status("ns", "w1", {}) == {RESOURCE_VERSION_KEY: "42"}
    finally:
        await kube.aclose()
    sent = [request.headers["Authorization"] for request in fake.seen]
    assert sent == ["Bearer old", "Bearer old", "Bearer new"]


async def test_an_event_is_posted_under_its_deterministic_name(
    api_server: tuple[FakeApiServer, str],
) -> None:
    fake, host = api_server
    fake.answers.append((201, {}))
    event = Event(EventType.NORMAL, EventReason.PHASE_CHANGED, "Init -> Running", key="phase:wf-1")
    await with_kube(host, lambda kube: kube.create_event(INVOLVED, event))
    (request,) = fake.seen
    assert (request.method, request.path) == ("POST", EVENTS_PATH)
    assert request.body["metadata"]["name"].startswith("w1.")
    assert request.body["involvedObject"]["uid"] == "u-1"
    assert (request.body["reason"], request.body["message"]) == ("PhaseChanged", "Init -> Running")


@pytest.mark.parametrize(
    ("code", "retried"),
    [
        *((code, False) for code in (409, 400, 403, 404, 422)),
        *((code, True) for code in (429, 500, 503)),
    ],
)
async def test_an_event_answer_is_delivered_dropped_or_retried(
    api_server: tuple[FakeApiServer, str], code: int, retried: bool
) -> None:
    """409: created before (delivered); 4xx no retry can fix: logged and dropped;
    429 and 5xx raise, so the status write waits for the next poll's retry."""
    fake, host = api_server
    fake.answers.append((code, status_error(code, "no")))
    event = Event(EventType.NORMAL, EventReason.PHASE_CHANGED, "m", key="k")
    create = with_kube(host, lambda kube: kube.create_event(INVOLVED, event))
    if retried:
        with pytest.raises(KubeApiRefused, match=f"HTTP {code}"):
            await create
    else:
        await create


async def test_no_answer_in_time_is_a_write_error_that_names_no_secret(
    api_server: tuple[FakeApiServer, str], caplog: pytest.LogCaptureFixture
) -> None:
    fake, host = api_server
    fake.stall = asyncio.Event()
    fake.answers.append((200, stored({})))

    async def blocking(call: Callable[[], Any]) -> Any:
        return call()

    writer = KubeWriter(configuration(host), blocking, timeout=0.5)
    caplog.set_level(logging.DEBUG)
    try:
        with pytest.raises(KubeWriteError) as raised:
            await writer.patch_merge(STATUS_PATH, {"status": {}})
    finally:
        await writer.aclose()
    assert "did not answer a PATCH" in str(raised.value)
    assert TOKEN not in str(raised.value)
    assert TOKEN not in caplog.text


async def test_a_refused_connection_is_a_write_error() -> None:
    async def blocking(call: Callable[[], Any]) -> Any:
        return call()

    writer = KubeWriter(configuration("http://127.0.0.1:9"), blocking, timeout=5)
    try:
        with pytest.raises(KubeWriteError, match="did not answer a POST"):
            await writer.post(EVENTS_PATH, {})
    finally:
        await writer.aclose()


async def serve_in_pieces(pieces: list[bytes]) -> tuple[web.AppRunner, str]:
    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for piece in pieces:
            await response.write(piece)
            await asyncio.sleep(0.01)  # not synchronisation: the pieces travel apart
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


async def test_an_answer_that_arrives_in_pieces_is_read_whole() -> None:
    """A stored status of 200 KB arrives in several reads (found by the e2e outage
    test: reading once gave the first piece, and a written status looked unwritten)."""
    body = json.dumps(stored({"message": "x" * 200_000})).encode()
    thirds = [body[: len(body) // 3], body[len(body) // 3 : -10], body[-10:]]
    runner, host = await serve_in_pieces(thirds)
    try:
        result = await with_kube(host, lambda kube: kube.patch_status("ns", "w1", {"a": 1}))
    finally:
        await runner.cleanup()
    assert result == {"message": "x" * 200_000, RESOURCE_VERSION_KEY: "42"}


async def test_an_oversized_answer_is_a_write_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kubewrites, "MAX_ANSWER_BYTES", 1000)
    runner, host = await serve_in_pieces([b"[" + b"0," * 400, b"0," * 400 + b"0]"])

    async def blocking(call: Callable[[], Any]) -> Any:
        return call()

    writer = KubeWriter(configuration(host), blocking)
    try:
        with pytest.raises(KubeWriteError, match="answer over 1000 bytes"):
            await writer.post(EVENTS_PATH, {})
    finally:
        await writer.aclose()
        await runner.cleanup()
