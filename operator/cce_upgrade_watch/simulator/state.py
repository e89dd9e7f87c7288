"""The simulated cloud: clusters, their workflows, credentials, faults and counters.

Everything here is plain data plus the operations the API and the control API
perform on it; it knows nothing of HTTP. All of it lives on the event loop's
thread, so no locks.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from cce_upgrade_watch.simulator import timeline
from cce_upgrade_watch.simulator.auth import CredentialStore
from cce_upgrade_watch.simulator.clock import Clock
from cce_upgrade_watch.simulator.faults import FaultBook
from cce_upgrade_watch.simulator.identity import IdentityState
from cce_upgrade_watch.simulator.lifecycle import ClusterLifecycle, ScheduledPlan
from cce_upgrade_watch.simulator.scenarios import (
    DEFAULT_CLUSTER_VERSION,
    DEFAULT_CREATE_TIMELINE,
    DEMO_CREDENTIALS,
    DEMO_PROJECT_ID,
    CredentialSpec,
    ErrorStyle,
    ItemsShape,
    PlanSeed,
    Scenario,
    ScenarioError,
    TimestampFormat,
    builtin_timelines,
)
from cce_upgrade_watch.simulator.stats import GlobalStats, RequestLog
from cce_upgrade_watch.simulator.timeline import Plan, TimelineSpec, WorkflowSnapshot

# Phases in which the API refuses to cancel, as its documentation says.
UNCANCELLABLE_PHASES = frozenset(
    {timeline.PHASE_RUNNING, timeline.PHASE_SUCCESS, timeline.PHASE_CANCEL}
)
# Phases in which a new workflow cannot be created beside the current one.
UNFINISHED_PHASES = frozenset({timeline.PHASE_INIT, timeline.PHASE_RUNNING, timeline.PHASE_PENDING})


class ConflictError(Exception):
    """An operation the API refuses in the workflow's current state (HTTP 400)."""


@dataclass(frozen=True, slots=True)
class ResponseStyle:
    """How answers are shaped; unset fields fall back to the global style."""

    items_shape: ItemsShape | None = None
    error_style: ErrorStyle | None = None
    timestamp_format: TimestampFormat | None = None

    def over(self, fallback: ResponseStyle) -> ResponseStyle:
        return ResponseStyle(
            items_shape=self.items_shape or fallback.items_shape,
            error_style=self.error_style or fallback.error_style,
            timestamp_format=self.timestamp_format or fallback.timestamp_format,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "itemsShape": self.items_shape,
            "errorStyle": self.error_style,
            "timestampFormat": self.timestamp_format,
        }


DEFAULT_STYLE = ResponseStyle(items_shape="list", error_style="cce", timestamp_format="go")


@dataclass
class Workflow:
    uid: str
    name: str
    cluster_id: str
    cluster_version: str
    target_version: str
    timeline_name: str
    plan: Plan
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def created_at(self) -> float:
        return self.plan.created_at

    def snapshot(self, now: float) -> WorkflowSnapshot:
        return timeline.snapshot(self.plan, now)


@dataclass
class Cluster:
    cluster_id: str
    project_id: str
    version: str
    create_timeline: TimelineSpec
    workflows: list[Workflow] = field(default_factory=list)  # by creation time
    style: ResponseStyle = field(default_factory=ResponseStyle)
    requests: RequestLog = field(default_factory=RequestLog)
    lifecycle: ClusterLifecycle = field(default_factory=ClusterLifecycle)

    def visible_workflows(self, now: float) -> list[Workflow]:
        """Workflows that exist at `now` (a scenario may schedule some later)."""
        return [workflow for workflow in self.workflows if workflow.created_at <= now]

    def find_workflow(self, uid: str, now: float) -> Workflow | None:
        for workflow in self.visible_workflows(now):
            if workflow.uid == uid:
                return workflow
        return None

    def current_version(self, now: float) -> str:
        """The version after the newest successful upgrade, else the initial one."""
        for workflow in reversed(self.visible_workflows(now)):
            if workflow.snapshot(now).phase == timeline.PHASE_SUCCESS:
                return workflow.target_version
        return self.version


def _uuid() -> str:
    return str(uuid.uuid4())


def _task_ids() -> Iterator[str]:
    while True:
        yield _uuid()


class SimulatorState:
    """The whole simulated cloud, driven by `clock`."""

    def __init__(
        self,
        *,
        clock: Clock,
        time_scale: float = 1.0,
        wall_clock: Callable[[], float] | None = None,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.clock = clock
        self.time_scale = time_scale
        self.wall_clock = wall_clock or time.time
        self.started_at = clock.now()
        self.credentials = CredentialStore()
        #: STS, IAM, metadata and pod identity (configured apart from scenarios;
        #: keys it issued live in `credentials` and vanish on reset with the rest).
        self.identity = IdentityState()
        self.timelines: dict[str, TimelineSpec] = dict(builtin_timelines())
        self.clusters: dict[str, Cluster] = {}
        self.faults = FaultBook()
        self.style = DEFAULT_STYLE
        self.stats = GlobalStats()
        self.scenario: Scenario | None = None
        self.extra_credentials: tuple[CredentialSpec, ...] = ()

    # ---- set-up -----------------------------------------------------------------

    def load(self, scenario: Scenario, extra_credentials: Iterable[CredentialSpec] = ()) -> None:
        """Start over from `scenario`; `extra_credentials` (command line) come on top."""
        self.scenario = scenario
        self.extra_credentials = tuple(extra_credentials)
        self.reset()

    def reset(self) -> None:
        """Back to the loaded scenario as if just started: clusters, faults, counters."""
        self.started_at = self.clock.now()
        self.clusters.clear()
        self.faults.clear()
        self.style = DEFAULT_STYLE
        self.stats = GlobalStats()
        self.credentials.clear()
        self.identity.forget_issued()
        scenario = self.scenario or Scenario(name="empty")
        self.timelines = {**builtin_timelines(), **scenario.timelines}
        credentials = scenario.credentials + self.extra_credentials
        for spec in credentials or DEMO_CREDENTIALS:
            self.add_credentials(spec)
        default_project = (credentials or DEMO_CREDENTIALS)[0].project_id
        for seed in scenario.clusters:
            cluster = self.add_cluster(
                cluster_id=seed.cluster_id,
                project_id=seed.project_id or default_project,
                version=seed.version,
                create_timeline=seed.create_timeline,
                style=ResponseStyle(seed.items_shape, seed.error_style, seed.timestamp_format),
            )
            for workflow in seed.workflows:
                self.start_workflow(
                    cluster,
                    workflow.timeline,
                    target_version=workflow.target_version,
                    cluster_version=workflow.cluster_version,
                    at=self.started_at + workflow.at / self.time_scale,
                    uid=workflow.uid,
                    labels=workflow.labels,
                    annotations=workflow.annotations,
                )
            cluster.lifecycle = ClusterLifecycle.from_seed(
                seed.lifecycle, self.started_at, self.time_scale
            )
            for plan in seed.lifecycle.plans:
                self.schedule_plan(cluster, plan)

    def clear_stats(self) -> None:
        self.stats = GlobalStats()
        for cluster in self.clusters.values():
            cluster.requests = RequestLog()

    def add_credentials(self, spec: CredentialSpec) -> None:
        if spec.access_key is not None and spec.secret_key is not None:
            self.credentials.add_access_key(
                spec.project_id, spec.access_key, spec.secret_key, spec.security_token
            )
        for token in spec.tokens:
            self.credentials.add_token(spec.project_id, token)

    def default_project_id(self) -> str:
        projects = sorted(self.credentials.project_ids())
        return projects[0] if projects else DEMO_PROJECT_ID

    def timeline(self, name: str) -> TimelineSpec:
        known = self.timelines.get(name)
        if known is None:
            raise ScenarioError(f"unknown timeline {name!r}; known: {sorted(self.timelines)}")
        return known

    # ---- clusters and workflows -----------------------------------------------------

    def add_cluster(
        self,
        *,
        cluster_id: str | None = None,
        project_id: str | None = None,
        version: str = DEFAULT_CLUSTER_VERSION,
        create_timeline: TimelineSpec | None = None,
        style: ResponseStyle | None = None,
    ) -> Cluster:
        cluster_id = cluster_id or _uuid()
        if cluster_id in self.clusters:
            raise ValueError(f"cluster {cluster_id} already exists")
        cluster = Cluster(
            cluster_id=cluster_id,
            project_id=project_id or self.default_project_id(),
            version=version,
            create_timeline=create_timeline or self.timeline(DEFAULT_CREATE_TIMELINE),
            style=style or ResponseStyle(),
        )
        self.clusters[cluster_id] = cluster
        return cluster

    def start_workflow(
        self,
        cluster: Cluster,
        spec: TimelineSpec,
        *,
        target_version: str,
        cluster_version: str | None = None,
        at: float | None = None,
        uid: str | None = None,
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> Workflow:
        created_at = self.clock.now() if at is None else at
        uid = uid or _uuid()
        workflow = Workflow(
            uid=uid,
            name=f"upgradeworkflow-{uid[:8]}",
            cluster_id=cluster.cluster_id,
            cluster_version=cluster_version or cluster.current_version(created_at),
            target_version=target_version,
            timeline_name=spec.name,
            plan=timeline.plan_timeline(spec, created_at, self.time_scale, _task_ids()),
            labels=dict(labels or {}),
            annotations=dict(annotations or {}),
        )
        cluster.workflows.append(workflow)
        cluster.workflows.sort(key=lambda item: item.created_at)
        return workflow

    def schedule_plan(self, cluster: Cluster, seed: PlanSeed) -> ScheduledPlan:
        """An automatic upgrade plan; the workflow it runs starts at its last `notBefore`."""

        def at(seconds: float | None) -> float | None:
            return None if seconds is None else self.started_at + seconds / self.time_scale

        runs_at = seed.postponed_to if seed.postponed_to is not None else seed.not_before
        workflow = self.start_workflow(
            cluster, seed.timeline, target_version=seed.target_version, at=at(runs_at)
        )
        plan = ScheduledPlan(
            uid=seed.uid or _uuid(),
            target_version=seed.target_version,
            cluster_version=workflow.cluster_version,
            not_before=self.started_at + seed.not_before / self.time_scale,
            not_after=at(seed.not_after),
            not_before_deadline=at(seed.not_before_deadline),
            postponed_at=at(seed.postponed_at),
            postponed_to=at(seed.postponed_to),
            workflow_uid=workflow.uid,
        )
        cluster.lifecycle.plans.append(plan)
        return plan

    def create_workflow_via_api(
        self, cluster: Cluster, target_version: str, cluster_version: str | None
    ) -> Workflow:
        """POST .../upgradeworkflows: refused while another upgrade is unfinished."""
        now = self.clock.now()
        for existing in cluster.visible_workflows(now):
            phase = existing.snapshot(now).phase
            if phase in UNFINISHED_PHASES:
                raise ConflictError(
                    f"upgrade workflow {existing.uid} is still {phase}; "
                    "finish or cancel it before creating another"
                )
        return self.start_workflow(
            cluster,
            cluster.create_timeline,
            target_version=target_version,
            cluster_version=cluster_version,
        )

    def cancel_via_api(self, workflow: Workflow) -> None:
        """PATCH {"status":{"phase":"Cancel"}}: refused while running, succeeded or cancelled."""
        now = self.clock.now()
        phase = workflow.snapshot(now).phase
        if phase in UNCANCELLABLE_PHASES:
            raise ConflictError(
                f"upgrade workflow {workflow.uid} cannot be cancelled in phase {phase}"
            )
        workflow.plan = timeline.cancel(workflow.plan, now)

    def force_task(self, workflow: Workflow, task_type: str, status: str) -> None:
        try:
            workflow.plan = timeline.force_task(workflow.plan, task_type, status, self.clock.now())
        except KeyError:
            tasks = [task.step.task_type for task in workflow.plan.tasks]
            raise ValueError(f"workflow has no task {task_type!r}; tasks: {tasks}") from None

    def force_phase(self, workflow: Workflow, phase: str) -> None:
        workflow.plan = timeline.force_phase(workflow.plan, phase, self.clock.now())

    def style_for(self, cluster: Cluster | None) -> ResponseStyle:
        global_style = self.style.over(DEFAULT_STYLE)
        return cluster.style.over(global_style) if cluster else global_style
