"""A model-based fuzz of the poll loop: random upgrades, cloud failures, failed status
writes and restarts, against the real `PollLoop` with fakes for the CCE client, the
Kubernetes API and the Secret.

The reconcile core alone is fuzzed in tests/unit/reconcile/test_properties.py; this
adds the loop around it, where a status write can fail and a restart loses every
in-memory thing. What must hold over any run:

- `poll_once` never raises, and never asks for the next poll sooner than a
  `Retry-After` the cloud sent;
- a failed poll never changes the stored workflow;
- the Events posted tell the story of the stored status, each step exactly once:
  every `TaskStatusChanged` / `PhaseChanged` continues where the previous one for
  that task / the workflow ended and the last one ends at the stored value;
  `PollFailed` and `PollRecovered` alternate and agree with the stored `Synced`;
- a condition's `lastTransitionTime` moves only when its status flips.
"""

from __future__ import annotations

import asyncio
import base64
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cce_upgrade_watch.cce.errors import (
    ApiUnavailable,
    CceError,
    ClusterNotFound,
    CredentialsRejected,
    InvalidResponse,
    Throttled,
)
from cce_upgrade_watch.cce.models import Workflows, parse_workflow_list
from cce_upgrade_watch.config import OperatorConfig
from cce_upgrade_watch.credentials import CredentialsCache
from cce_upgrade_watch.events import Event
from cce_upgrade_watch.pollloop import PollLoop, Services
from cce_upgrade_watch.scheduler import Scheduler

TASKS = ("PreCheck", "Snapshot", "Cluster", "PostCheck")
PROGRESSION = ("Init", "Queuing", "Running", "Success")
MIRRORED = ("phase", "workflowID", "pointStatuses", "lineStatuses", "progress", "currentTask")
START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

ERRORS: dict[str, Any] = {
    "unavailable": lambda: ApiUnavailable("the API is unavailable", status_code=503),
    "timeout": lambda: ApiUnavailable("no answer in time (ReadTimeout)"),
    "invalid": lambda: InvalidResponse("the response is not JSON", status_code=200),
    "rejected": lambda: CredentialsRejected("credentials rejected", status_code=401),
    "not-found": lambda: ClusterNotFound("cluster not found", status_code=404),
}


class FakeCce:
    """Answers with the world's workflow, or raises the error the test chose; each
    call takes `seconds` on the loop's clock (a throttled poll retries for long)."""

    def __init__(self) -> None:
        self.error: CceError | None = None
        self.body: dict[str, Any] = {"items": []}
        self.calls = 0
        self.clock = 0.0
        self.seconds = 0.0

    async def list_upgrade_workflows(self, project_id: str, cluster_id: str, **_: Any) -> Any:
        self.calls += 1
        self.clock += self.seconds
        if self.error is not None:
            raise self.error
        parsed = parse_workflow_list(self.body)
        return Workflows(parsed.items, parsed.dropped)

    async def get_object(self, *args: Any, **kwargs: Any) -> Any:
        """The lifecycle calls: the cloud knows nothing around the workflows."""
        return {}


class FakeApiServer:
    """Stores `.status` under merge-patch rules; can refuse writes (it is down), or
    only status writes (the operator dies between its Events and its status write)."""

    def __init__(self) -> None:
        self.status: dict[str, Any] = {}
        self.down = False
        self.status_writes_fail = False

    async def patch_status(
        self, namespace: str, name: str, status_patch: Mapping[str, Any]
    ) -> Mapping[str, Any] | None:
        if self.down:
            raise ConnectionRefusedError("the API server is down")
        if self.status_writes_fail:
            raise ConnectionResetError("killed before the status write")
        for key, value in status_patch.items():
            if value is None:
                self.status.pop(key, None)
            else:
                self.status[key] = value
        return dict(self.status)


async def read_secret(namespace: str, name: str) -> Mapping[str, str]:
    values = {"accessKey": "AKMODEL", "secretKey": "sk-model"}
    return {key: base64.b64encode(value.encode()).decode() for key, value in values.items()}


_TASK_EVENT = re.compile(r"(?P<task>\w+): (?P<before>\S+) -> (?P<after>\S+)$")
_PHASE_EVENT = re.compile(r"(?P<before>\S+) -> (?P<after>\S+) \(")
_DISCOVERED = re.compile(r", phase (?P<phase>\S+)$")


class PollLoopMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.cce = FakeCce()
        self.api = FakeApiServer()
        self.now = START
        self.progress = [0] * len(TASKS)  # index into PROGRESSION per task
        self.phase_override: str | None = None
        self.events: list[Event] = []
        self.events_ahead = False  # Events created whose status is not stored yet
        self.loop = self._new_loop()
        self.previous_conditions: dict[str, dict[str, Any]] = {}
        self.discovered = False
        #: Each task's status in the status that announced the workflow.
        self.start_tasks: dict[str, str] | None = None
        self._render()

    # ------------------------------------------------------------ the world

    def _new_loop(self) -> PollLoop:
        body = {
            "metadata": {"namespace": "ns", "name": "w", "generation": 1, "annotations": {}},
            "spec": {
                "region": "ap-southeast-1",
                "projectId": "0123456789abcdef0123456789abcdef",
                "clusterId": "b4b9e60f-8aa2-11ee-af09-0255ac10004f",
                "credentialsSecretRef": {"name": "creds"},
                "pollInterval": "5m",
                "activePollInterval": "30s",
            },
            "status": dict(self.api.status),  # what a restarted operator reads
        }
        self.body = body
        services = Services(
            config=OperatorConfig(),
            cce=self.cce,  # type: ignore[arg-type]
            status_writer=self.api,
            credentials=CredentialsCache(read_secret),
        )
        return PollLoop(
            body,
            services,
            self._create_event,
            clock=lambda: self.cce.clock,
            wall_clock=lambda: self.now,
        )

    async def _create_event(self, event: Event) -> None:
        """The Events API: down with the API server; a name exists once (409)."""
        if self.api.down:
            raise ConnectionRefusedError("the API server is down")
        if all(known.key != event.key for known in self.events):
            self.events.append(event)

    def _render(self) -> None:
        statuses = [PROGRESSION[index] for index in self.progress]
        if self.phase_override is not None:
            phase = self.phase_override
        elif all(status == "Success" for status in statuses):
            phase = "Success"
        elif all(status == "Init" for status in statuses):
            phase = "Init"
        else:
            phase = "Running"
        self.cce.body = {
            "items": [
                {
                    "metadata": {
                        "uid": "wf-1",
                        "creationTimestamp": "2024-05-01 11:00:00 +0000 UTC",
                    },
                    "spec": {"clusterVersion": "v1.28.3-r0", "targetVersion": "v1.29.1-r0"},
                    "status": {
                        "phase": phase,
                        "pointStatuses": [
                            {"taskType": task, "status": status}
                            for task, status in zip(TASKS, statuses, strict=True)
                        ],
                    },
                }
            ]
        }

    # While Events may be ahead of the stored status (a status write failed after
    # them), the cloud stands still: the next poll must derive the same Events
    # again (AlreadyExists) and then store the status, with nothing doubled.
    @precondition(lambda self: not self.events_ahead)
    @rule(task=st.integers(0, len(TASKS) - 1))
    def task_moves_on(self, task: int) -> None:
        # Tasks run in order: one moves only once those before it succeeded.
        if all(self.progress[i] == len(PROGRESSION) - 1 for i in range(task)):
            self.progress[task] = min(self.progress[task] + 1, len(PROGRESSION) - 1)
        self._render()

    @precondition(lambda self: not self.events_ahead)
    @rule(phase=st.sampled_from([None, "Paused", "Pending", "Cancel"]))
    def phase_is_forced(self, phase: str | None) -> None:
        self.phase_override = phase
        self._render()

    @precondition(lambda self: not self.events_ahead)
    # Retry-After is whole seconds on the wire; milliseconds leave room for parsing,
    # while a subnormal float (1e-311) would only test float addition on the clock.
    @rule(
        kind=st.sampled_from([None, *ERRORS]),
        retry_after=st.none() | st.floats(0, 40).map(lambda seconds: round(seconds, 3)),
    )
    def cloud_answers(self, kind: str | None, retry_after: float | None) -> None:
        if kind is None and retry_after is not None:
            self.cce.error = Throttled("throttled", status_code=429, retry_after=retry_after)
        else:
            self.cce.error = ERRORS[kind]() if kind is not None else None

    @rule(down=st.booleans())
    def api_server(self, down: bool) -> None:
        self.api.down = down

    @rule(fail=st.booleans())
    def status_writes(self, fail: bool) -> None:
        self.api.status_writes_fail = fail

    @precondition(lambda self: self.discovered)
    @rule()
    def operator_restarts(self) -> None:
        self.loop = self._new_loop()

    # ------------------------------------------------------------ a poll

    def _run_one_poll(self) -> float:
        """The scheduler takes the loop (from the stored status, as after a restart)
        and runs one poll at once: returns how long until the next one is due."""
        # The stored status, as kopf's watch delivers it: a new body.
        self.body = {**self.body, "status": dict(self.api.status)}
        self.loop.notice(self.body)
        scheduler = Scheduler(clock=lambda: self.cce.clock)

        async def one_poll() -> float:
            scheduler.add("w", self.loop, tenant="ns")
            scheduler.wake("w")  # not after the initial delay: now
            scheduler.start_due()
            assert scheduler.in_flight == 1
            await scheduler.join()
            due = scheduler.next_due("w")
            return math.inf if due is None else due - self.cce.clock

        return asyncio.run(one_poll())

    @rule(seconds=st.integers(1, 600), duration=st.floats(0, 60))
    def poll(self, seconds: int, duration: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.cce.seconds = duration
        stored_before = dict(self.api.status)
        posted_before = len(self.events)
        error = self.cce.error
        started = self.cce.clock
        delay = self._run_one_poll()
        ended = self.cce.clock

        # Never sooner than the schedule, nor than a Retry-After after the last answer.
        retry_after = getattr(error, "retry_after", None) or 0.0
        assert max(delay, 0.0) >= retry_after, (delay, retry_after)
        assert ended + max(delay, 0.0) >= started + 5  # the shortest interval there is
        if error is not None:  # a failed poll keeps the workflow as stored
            for key in MIRRORED:
                assert self.api.status.get(key) == stored_before.get(key), key
        if self.api.down:  # neither Events nor status get through: the next poll posts them
            assert len(self.events) == posted_before
            assert self.api.status == stored_before
        if self.api.status_writes_fail and not self.api.down:
            # Killed between the Events and the status write: the Events may be ahead.
            self.events_ahead = self.events_ahead or len(self.events) > posted_before
            assert self.api.status == stored_before
        elif self.api.status != stored_before:
            # The status caught up with its Events. (Not necessarily at the first
            # poll after: a restarted operator holds a first failed poll back once
            # more, then reports it under the same Event name.)
            self.events_ahead = False
        if self.api.status.get("workflowID"):
            self.discovered = True
        announced = any(e.reason == "WorkflowDiscovered" for e in self.events)
        if announced and self.start_tasks is None and not self.events_ahead:
            points = self.api.status.get("pointStatuses", [])
            self.start_tasks = {p["taskType"]: p["status"] for p in points}

        conditions = {c["type"]: c for c in self.api.status.get("conditions", [])}
        for kind, condition in conditions.items():
            before = self.previous_conditions.get(kind)
            if before is not None and before["status"] == condition["status"]:
                assert condition["lastTransitionTime"] == before["lastTransitionTime"], kind
        self.previous_conditions = conditions

    # ------------------------------------------------------------ the story told

    @invariant()
    def events_tell_the_stored_story(self) -> None:
        if self.events_ahead:
            return  # told again at the next poll, which stores the status
        status = self.api.status
        task_state: dict[str, str] = {}
        phase: str | None = None
        failing = False
        just_discovered = False
        for event in self.events:
            if just_discovered and "(none) -> " in event.message:
                # A workflow first seen already failed: the Warnings its facts imply.
                assert event.type == "Warning", event
                if event.reason == "PhaseChanged":
                    assert event.message.startswith(f"(none) -> {phase} "), (event, phase)
                else:
                    match = _TASK_EVENT.match(event.message)
                    assert match is not None, event.message
                    assert task_state.get(match["task"]) == match["after"] == "Failed"
                continue
            just_discovered = event.reason == "WorkflowDiscovered"
            if event.reason == "WorkflowDiscovered":
                assert phase is None, "discovered twice"
                match = _DISCOVERED.search(event.message)
                assert match is not None, event.message
                phase = match["phase"]
                # The status that announced the workflow gave each task's starting
                # point: none of them is announced, whatever their status.
                assert self.start_tasks is not None
                task_state = dict(self.start_tasks)
            elif event.reason == "TaskStatusChanged":
                match = _TASK_EVENT.match(event.message)
                assert match is not None, event.message
                known = task_state.get(match["task"], "(none)")
                assert known == match["before"], (event.message, known)
                task_state[match["task"]] = match["after"]
            elif event.reason == "PhaseChanged":
                match = _PHASE_EVENT.match(event.message)
                assert match is not None, event.message
                assert match["before"] == phase, (event.message, phase)
                phase = match["after"]
            elif event.reason == "PollFailed":
                assert not failing, "PollFailed twice in one episode"
                failing = True
            elif event.reason == "PollRecovered":
                assert failing, "PollRecovered without PollFailed"
                failing = False
        synced = next((c for c in status.get("conditions", []) if c["type"] == "Synced"), None)
        if synced is not None:
            assert failing == (synced["status"] == "False")
        if phase is not None:
            assert phase == status.get("phase")
        for point in status.get("pointStatuses", []):
            if phase is not None:
                assert task_state.get(point["taskType"]) == point["status"], (point, task_state)


PollLoopMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestPollLoopModel = PollLoopMachine.TestCase
