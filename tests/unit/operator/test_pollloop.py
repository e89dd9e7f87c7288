"""The poll loop's I/O decisions, with fakes for the CCE client and the Kubernetes API."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from cce_upgrade_watch.cce.errors import ApiUnavailable, CredentialsRejected, Throttled
from cce_upgrade_watch.cce.models import Workflows, parse_workflow_list
from cce_upgrade_watch.config import OperatorConfig
from cce_upgrade_watch.credentials import CredentialsCache
from cce_upgrade_watch.events import Event
from cce_upgrade_watch.metrics import OperatorMetrics
from cce_upgrade_watch.pollloop import RESOURCE_VERSION_KEY, PollLoop, Services, StatusRejected
from cce_upgrade_watch.scheduler import Scheduler

PROJECT = "0123456789abcdef0123456789abcdef"
CLUSTER = "b4b9e60f-8aa2-11ee-af09-0255ac10004f"

RUNNING = {
    "items": [
        {
            "metadata": {"uid": "wf-1", "creationTimestamp": "2024-01-01 00:00:00 +0000 UTC"},
            "spec": {"clusterVersion": "v1.28.3-r0", "targetVersion": "v1.29.1-r0"},
            "status": {
                "phase": "Running",
                "pointStatuses": [{"taskType": "PreCheck", "status": "Running"}],
            },
        }
    ]
}


class FakeCce:
    def __init__(self) -> None:
        self.answers: list[Any] = []
        self.calls: list[httpx.Auth] = []
        self.tenants: list[str] = []
        self.lifecycle: dict[str, Any] = {}  # operation (cce/lifecycle.py) -> body or error
        self.lifecycle_calls: list[tuple[str, str, str, httpx.Auth]] = []

    async def list_upgrade_workflows(self, project_id: str, cluster_id: str, **kw: Any) -> Any:
        self.calls.append(kw["auth"])
        self.tenants.append(kw["tenant"])
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        parsed = parse_workflow_list(answer)
        return Workflows(parsed.items, parsed.dropped)

    async def get_object(self, operation: str, path: str, **kw: Any) -> Any:
        """A lifecycle call (`cce/lifecycle.py`): the body (or error) set for its
        operation, else an empty answer (the cloud knows nothing)."""
        self.lifecycle_calls.append((operation, path, kw["tenant"], kw["auth"]))
        answer = self.lifecycle.get(operation, {})
        if isinstance(answer, Exception):
            raise answer
        return copy.deepcopy(answer)


class FakeWriter:
    """Stores `.status` under merge-patch rules, as the API server does."""

    def __init__(self) -> None:
        self.patches: list[Mapping[str, Any]] = []
        self.status: dict[str, Any] = {}
        self.fail = False
        self.reject: str | None = None  # refuse patches that set this key (a 422)
        self.version = 0
        self.log: list[str] = []  # "event:<reason>" and "status" in the order they happened

    async def patch_status(
        self, namespace: str, name: str, status_patch: Mapping[str, Any]
    ) -> Mapping[str, Any] | None:
        if self.fail:
            raise RuntimeError("the API server is down")
        if self.reject is not None and self.reject in status_patch:
            raise StatusRejected(
                "HTTP 422: status.pointStatuses: Too many: 100: must have at most 64 items"
            )
        self.patches.append(status_patch)
        self.log.append("status")
        for key, value in status_patch.items():
            if value is None:
                self.status.pop(key, None)
            else:
                self.status[key] = value
        self.version += 1
        return {**self.status, RESOURCE_VERSION_KEY: str(self.version)}


class FakeEvents:
    """The Events API: an Event's name (its key here) can exist once (409 after)."""

    def __init__(self, writer: FakeWriter) -> None:
        self.writer = writer
        self.created: list[Event] = []
        self.calls = 0
        self.fail = False

    async def post(self, event: Event) -> None:
        self.calls += 1
        if self.fail:
            raise RuntimeError("the Events API is down")
        if all(e.key != event.key for e in self.created):
            self.created.append(event)
            self.writer.log.append(f"event:{event.reason}")


class FakeSecrets:
    def __init__(self, secret_key: str = "SK1") -> None:
        self.secret_key = secret_key
        self.reads = 0

    async def read(self, namespace: str, name: str) -> Mapping[str, str] | None:
        self.reads += 1
        values = {"accessKey": "AK1", "secretKey": self.secret_key}
        return {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}


async def calls_reach(cce: FakeCce, count: int, timeout: float = 5) -> None:
    """Wait until the loop has called the cloud `count` times."""
    async with asyncio.timeout(timeout):
        while len(cce.calls) < count:
            await asyncio.sleep(0.01)


def body(generation: int = 1, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "ns", "name": "w", "generation": generation, "annotations": {}},
        "spec": {
            "region": "ap-southeast-1",
            "projectId": PROJECT,
            "clusterId": CLUSTER,
            "credentialsSecretRef": {"name": "creds"},
            **spec,
        },
    }


def make_services(
    cce: FakeCce, writer: FakeWriter, secrets: FakeSecrets, observer: Any = None
) -> Services:
    """The loop's services on the fakes (`observer`: the metrics, or none)."""
    extra = {"observer": observer} if observer is not None else {}
    return Services(
        config=OperatorConfig(),
        cce=cce,  # type: ignore[arg-type]
        status_writer=writer,
        credentials=CredentialsCache(secrets.read),
        **extra,
    )


def make_loop(
    obj: dict[str, Any], cce: FakeCce, writer: FakeWriter, secrets: FakeSecrets
) -> tuple[PollLoop, list[Event]]:
    loop, events = make_loop_with_events(obj, cce, writer, secrets)
    return loop, events.created


def make_loop_with_events(
    obj: dict[str, Any], cce: FakeCce, writer: FakeWriter, secrets: FakeSecrets
) -> tuple[PollLoop, FakeEvents]:
    events = FakeEvents(writer)
    services = make_services(cce, writer, secrets)
    loop = PollLoop(obj, services, events.post, wall_clock=lambda: datetime(2024, 1, 1, tzinfo=UTC))
    return loop, events


async def test_unchanged_poll_writes_nothing_and_posts_nothing() -> None:
    cce, writer, secrets = FakeCce(), FakeWriter(), FakeSecrets()
    cce.answers = [RUNNING]
    loop, events = make_loop(body(), cce, writer, secrets)
    interval = await loop.poll_once()
    assert interval == 30  # the active interval: an upgrade runs
    assert len(writer.patches) == 1
    assert [e.reason for e in events] == ["WorkflowDiscovered"]
    for _ in range(5):
        await loop.poll_once()
    assert len(writer.patches) == 1
    assert len(events) == 1
    assert secrets.reads == 1  # credentials come from the cache


async def test_a_401_rereads_the_secret_and_retries_once() -> None:
    cce, writer, secrets = FakeCce(), FakeWriter(), FakeSecrets()
    cce.answers = [CredentialsRejected("rejected", status_code=401), RUNNING]
    loop, events = make_loop(body(), cce, writer, secrets)
    await loop.poll_once()
    assert secrets.reads == 2
    assert len(cce.calls) == 2
    assert [e.reason for e in events] == ["WorkflowDiscovered"]


async def test_a_401_twice_is_credentials_invalid() -> None:
    cce, writer, secrets = FakeCce(), FakeWriter(), FakeSecrets()
    cce.answers = [CredentialsRejected("rejected", status_code=401)]
    loop, events = make_loop(body(), cce, writer, secrets)
    interval = await loop.poll_once()
    synced = next(c for c in writer.patches[0]["conditions"] if c["type"] == "Synced")
    assert (synced["status"], synced["reason"]) == ("False", "CredentialsInvalid")
    assert interval == 300  # a person must act: no fast retries
    assert [(e.type, e.reason) for e in events] == [("Warning", "PollFailed")]


async def test_throttled_poll_waits_at_least_retry_after() -> None:
    cce, writer, secrets = FakeCce(), FakeWriter(), FakeSecrets()
    cce.answers = [Throttled("throttled", status_code=429, retry_after=900.0)]
    loop, _ = make_loop(body(pollInterval="1m"), cce, writer, secrets)
    assert await loop.poll_once() == 900


async def test_events_are_created_before_their_status_is_written() -> None:
    cce, writer, secrets = FakeCce(), FakeWriter(), FakeSecrets()
    cce.answers = [RUNNING]
    loop, _ = make_loop_with_events(body(), cce, writer, secrets)
    await loop.poll_once()
    assert writer.log == ["event:WorkflowDiscovered", "status"]


async def test_a_failed_status_write_is_retried_under_the_same_event_names() -> None:
    cce, writer, secrets = FakeCce(), FakeWriter(), FakeSecrets()
    cce.answers = [RUNNING]
    writer.fail = True
    loop, events = make_loop_with_events(
        body(pollInterval="1h", activePollInterval="1h"), cce, writer, secrets
    )
    assert await loop.poll_once() == 10  # retried soon, not an hour later
    assert [e.reason for e in events.created] == ["WorkflowDiscovered"]  # created first
    assert writer.status == {}
    writer.fail = False
    await loop.poll_once()
    assert events.calls == 2  # derived again, under the same name: AlreadyExists
    assert [e.reason for e in events.created] == ["WorkflowDiscovered"]
    assert writer.status["workflowID"] == "wf-1"


async def test_no_status_is_written_while_its_events_cannot_be_created() -> None:
    cce, writer, secrets = FakeCce(), FakeWriter(), FakeSecrets()
    cce.answers = [RUNNING]
    loop, events = make_loop_with_events(body(), cce, writer, secrets)
    events.fail = True
    assert await loop.poll_once() == 10
    assert writer.patches == []  # the transition stays unrecorded, so it is derived again
    events.fail = False
    await loop.poll_once()
    assert writer.log == ["event:WorkflowDiscovered", "status"]


async def test_a_status_edited_by_someone_else_is_corrected_at_the_next_poll() -> None:
    cce, writer, secrets = FakeCce(), FakeWriter(), FakeSecrets()
    cce.answers = [RUNNING]
    obj = body()
    loop, _ = make_loop(obj, cce, writer, secrets)
    await loop.poll_once()
    assert len(writer.patches) == 1
    # Someone patches our status between two polls (the watch delivers it)...
    writer.status["phase"] = "Success"
    writer.version += 1
    loop.notice({**obj, "metadata": {**obj["metadata"], "resourceVersion": "1"}})
    loop.notice(
        {
            **obj,
            "metadata": {**obj["metadata"], "resourceVersion": str(writer.version)},
            "status": dict(writer.status),
        }
    )
    await loop.poll_once()
    assert writer.status["phase"] == "Running"  # ...and the next poll puts it right
    assert writer.patches[-1] == {"phase": "Running"}


async def test_a_field_someone_else_set_beside_our_write_is_corrected() -> None:
    # The PATCH answer is the base of the next diff: what the API server stored,
    # including what someone else wrote, not only what we meant to write.
    cce, writer, secrets = FakeCce(), FakeWriter(), FakeSecrets()
    cce.answers = [RUNNING]
    obj = body()
    loop, _ = make_loop(obj, cce, writer, secrets)
    await loop.poll_once()
    writer.status["currentTask"] = "Forged"  # someone else's write, not yet seen
    obj["metadata"]["generation"] = 2  # our next write touches other fields only
    loop.notice(obj)  # the spec change, as the watch delivers it
    await loop.poll_once()
    assert "currentTask" not in writer.patches[-1]
    assert writer.status["currentTask"] == "Forged"
    await loop.poll_once()  # the same answer, but the stored status is not ours
    assert writer.status["currentTask"] == "PreCheck"


async def test_a_status_the_api_server_refuses_becomes_synced_false_once() -> None:
    cce, writer, secrets = FakeCce(), FakeWriter(), FakeSecrets()
    cce.answers = [RUNNING]
    loop, events = make_loop_with_events(body(), cce, writer, secrets)
    writer.reject = "pointStatuses"
    await loop.poll_once()
    synced = next(c for c in writer.status["conditions"] if c["type"] == "Synced")
    assert (synced["status"], synced["reason"]) == ("False", "InvalidResponse")
    assert "must have at most 64 items" in synced["message"]
    assert "pointStatuses" not in writer.status  # the minimal write: conditions only
    assert [e.reason for e in events.created] == ["WorkflowDiscovered", "PollFailed"]
    patches = len(writer.patches)
    for _ in range(3):  # the same answer is not tried again and again
        await loop.poll_once()
    assert len(writer.patches) == patches
    writer.reject = None
    cce.answers = [{"items": []}]  # a new answer is tried again
    await loop.poll_once()
    synced = next(c for c in writer.status["conditions"] if c["type"] == "Synced")
    assert synced["status"] == "True"


async def test_one_failed_poll_is_held_and_the_second_reported() -> None:
    cce, writer, secrets = FakeCce(), FakeWriter(), FakeSecrets()
    cce.answers = [RUNNING, ApiUnavailable("down", status_code=503), RUNNING]
    loop, events = make_loop(
        body(pollInterval="10m", activePollInterval="1m"), cce, writer, secrets
    )
    await loop.poll_once()
    assert await loop.poll_once() == 60  # held: asked again at the active interval
    assert await loop.poll_once() == 60
    assert len(writer.patches) == 1  # a dropped answer between two good ones: no write
    assert [e.reason for e in events] == ["WorkflowDiscovered"]  # and no PollFailed/PollRecovered


async def test_failed_poll_keeps_the_workflow_in_status() -> None:
    cce, writer, secrets = FakeCce(), FakeWriter(), FakeSecrets()
    down = ApiUnavailable("down", status_code=503)
    cce.answers = [RUNNING, down, down]
    loop, events = make_loop(body(), cce, writer, secrets)
    await loop.poll_once()
    await loop.poll_once()  # the first failure after a good poll is held
    await loop.poll_once()
    second = writer.patches[1]
    assert "phase" not in second  # only conditions changed
    assert "pointStatuses" not in second
    assert [e.reason for e in events] == ["WorkflowDiscovered", "PollFailed"]


async def test_suspended_watch_does_not_poll() -> None:
    cce, writer, secrets = FakeCce(), FakeWriter(), FakeSecrets()
    cce.answers = [RUNNING]
    loop, _ = make_loop(body(suspend=True), cce, writer, secrets)
    assert await loop.poll_once() == float("inf")
    assert cce.calls == []
    assert writer.patches == [{"observedGeneration": 1}]


@asynccontextmanager
async def scheduled(loop: PollLoop) -> AsyncIterator[Scheduler]:
    """The loop run by a scheduler's timer on the real clock, as the operator runs it."""
    scheduler = Scheduler()
    loop._wake = lambda: scheduler.wake("w")
    scheduler.add("w", loop, tenant=loop.namespace)
    scheduler.start()
    try:
        yield scheduler
    finally:
        loop.cancel_deferred()
        await scheduler.stop(grace=1.0)


async def test_spec_change_and_poll_now_wake_the_loop() -> None:
    cce, writer, secrets = FakeCce(), FakeWriter(), FakeSecrets()
    cce.answers = [RUNNING]
    obj = body(pollInterval="1h", activePollInterval="1h")
    loop, _ = make_loop(obj, cce, writer, secrets)
    async with scheduled(loop):

        async def polls(count: int) -> None:
            await calls_reach(cce, count)

        await polls(1)
        loop.notice(obj)  # our own status write coming back: no wake-up
        await asyncio.sleep(0.05)  # an observation window: no poll may happen in it
        assert len(cce.calls) == 1
        obj = copy.deepcopy(obj)  # a new body, as each watch event brings
        obj["metadata"]["generation"] = 2
        loop.notice(obj)
        await polls(2)
        obj = copy.deepcopy(obj)
        obj["metadata"]["annotations"]["cce.upgradewatch.io/poll-now"] = "1"
        loop.notice(obj)
        await polls(3)
        assert secrets.reads == 2  # poll-now also re-reads the Secret


async def test_the_loop_reads_the_newest_body_it_was_given() -> None:
    # No live body from kopf any more: the body of the last watch event is the one
    # the next poll reads its spec and generation from.
    cce, writer, secrets = FakeCce(), FakeWriter(), FakeSecrets()
    cce.answers = [RUNNING]
    loop, _ = make_loop(body(), cce, writer, secrets)
    await loop.poll_once()
    newer = body(generation=2, suspend=True)
    loop.notice(newer)
    assert await loop.poll_once() == float("inf")
    assert writer.patches[-1]["observedGeneration"] == 2
    assert len(cce.calls) == 1


# -- informational fields dropped, and the namespace as the client's tenant ---------


async def test_unreadable_fields_are_logged_once_per_poll_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    odd: Any = copy.deepcopy(RUNNING)
    points = odd["items"][0]["status"]["pointStatuses"]
    points[0]["startTimeStamp"] = "1700815155"  # epoch seconds
    points.append({"taskType": "Cluster", "status": "Init", "startTimeStamp": "1700815160"})
    odd["items"][0]["status"]["lineStatuses"] = [{"critical": "maybe"}]
    cce, writer, secrets = FakeCce(), FakeWriter(), FakeSecrets()
    cce.answers = [odd]
    metrics = OperatorMetrics()
    services = make_services(cce, writer, secrets, observer=metrics)
    loop = PollLoop(body(), services, lambda event: None)
    with caplog.at_level(logging.WARNING, logger="cce_upgrade_watch.pollloop"):
        await loop.poll_once()
        await loop.poll_once()  # the same answer again: logged and counted again

    # The poll worked: the status mirrors the workflow, minus what could not be read.
    synced = next(c for c in writer.patches[0]["conditions"] if c["type"] == "Synced")
    assert (synced["status"], synced["reason"]) == ("True", "PollSucceeded")
    assert writer.patches[0]["phase"] == "Running"
    assert all("startTimeStamp" not in p for p in writer.patches[0]["pointStatuses"])
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2  # one line per poll, not one per field
    assert "ns/w" in warnings[0].getMessage()
    assert "startTimeStamp x2" in warnings[0].getMessage()
    assert "critical x1" in warnings[0].getMessage()
    sample = metrics.registry.get_sample_value
    assert sample("cceupgradewatch_dropped_fields_total", {"field": "startTimeStamp"}) == 4
    assert sample("cceupgradewatch_dropped_fields_total", {"field": "critical"}) == 2
    assert cce.tenants == ["ns", "ns"]  # the client shares its slots by namespace


async def test_the_watch_s_copy_of_our_own_write_replaces_the_loop_s() -> None:
    # Memory: one copy of the status per object (kopf keeps the body anyway), and
    # with it nothing changes: the next unchanged poll writes nothing.
    cce, writer, secrets = FakeCce(), FakeWriter(), FakeSecrets()
    cce.answers = [RUNNING]
    obj = body()
    loop, _ = make_loop(obj, cce, writer, secrets)
    await loop.poll_once()
    delivered = {
        **obj,
        "metadata": {**obj["metadata"], "resourceVersion": str(writer.version)},
        "status": json.loads(json.dumps(writer.status)),  # parsed anew, as a watch event is
    }
    loop.notice(delivered)
    assert loop._stored_status is delivered["status"]
    await loop.poll_once()
    assert len(writer.patches) == 1


async def test_a_sleeping_loop_holds_no_task_and_stops_at_once() -> None:
    # Thousands of loops sleep at any moment: none holds a task while it sleeps,
    # only the scheduler's one timer runs.
    cce, writer, secrets = FakeCce(), FakeWriter(), FakeSecrets()
    cce.answers = [RUNNING]
    loop, _ = make_loop(body(pollInterval="1h", activePollInterval="1h"), cce, writer, secrets)
    before = asyncio.all_tasks()
    async with asyncio.timeout(1), scheduled(loop) as scheduler:
        await calls_reach(cce, 1)
        await scheduler.join()
        assert scheduler.next_due("w") is not None  # asleep, due in an hour
        assert len(asyncio.all_tasks() - before) == 1  # the timer only
    assert asyncio.all_tasks() == before  # stopped at once, nothing left behind
