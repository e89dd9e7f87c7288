"""Scenarios: the clusters, workflows and credentials a simulator starts with.

A scenario is a YAML or JSON file, or the name of a built-in one (the files in
`scenarios/` beside this module). Every duration is in scenario seconds, which
`--time-scale` divides. See the package README for the format; in short:

    description: one upgrade that succeeds
    credentials:                 # optional; default: the demo credentials below
      - projectId: 0123456789abcdef0123456789abcdef
        accessKey: MYACCESSKEY
        secretKey: my-secret-key
        securityToken: ...       # optional: temporary credentials
        tokens: [my-iam-token]   # optional: accepted X-Auth-Token values
    timelines:                   # optional; built-in timelines are always known
      slow:
        steps:
          - {task: PreCheck, wait: 5, queue: 2, run: 20}
          - {task: Cluster, run: 600, outcome: Failed}
          - {task: Rollback, wait: 10, run: 60}     # Rollback runs only after a failure
        cancelAfter: 900         # optional
        endPhase: Pending        # optional: the phase once everything has happened
    clusters:
      - clusterId: b4b9e60f-8aa2-11ee-af09-0255ac10004f
        projectId: ...           # default: the first credentials' project
        version: v1.28.3-r0
        createTimeline: success  # what POST .../upgradeworkflows starts
        itemsShape: single       # optional: list (default) or single
        errorStyle: status       # optional: cce (default) or status
        timestampFormat: rfc3339 # optional: go (default) or rfc3339
        workflows:
          - {timeline: slow, targetVersion: v1.29.1-r0, at: 0}   # at < 0: in the past
        lifecycle:               # optional: window, plans, suggested patch, backups
          suggestedPatch: r1
          plans:
            - {targetVersion: v1.28.3-r1, notBefore: 3600, postponedAt: 300, postponedTo: 900}
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cce_upgrade_watch.simulator.timeline import (
    TASK_PRECHECK,
    TASK_ROLLBACK,
    LineSpec,
    StepSpec,
    TimelineSpec,
)

# The demo credentials, used when neither the scenario nor the command line
# defines any. They are public: never use them for anything real.
DEMO_PROJECT_ID = "0123456789abcdef0123456789abcdef"
DEMO_ACCESS_KEY = "SIMULATORDEMOAK00001"
DEMO_SECRET_KEY = "simulator-demo-secret-key-not-a-secret0"  # noqa: S105
DEMO_TOKEN = "simulator-demo-token"  # noqa: S105
DEMO_CLUSTER_ID = "b4b9e60f-8aa2-11ee-af09-0255ac10004f"
DEFAULT_CLUSTER_VERSION = "v1.28.3-r0"
DEFAULT_TARGET_VERSION = "v1.29.1-r0"
DEFAULT_CREATE_TIMELINE = "success"
PRECHECK_EXPIRES_AFTER = 24 * 3600.0

PROJECT_ID_PATTERN = r"^[0-9a-f]{32}$"
CLUSTER_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
_PROJECT_ID = re.compile(PROJECT_ID_PATTERN)
_CLUSTER_ID = re.compile(CLUSTER_ID_PATTERN)

ItemsShape = Literal["list", "single"]
ErrorStyle = Literal["cce", "status"]
TimestampFormat = Literal["go", "rfc3339"]


class ScenarioError(ValueError):
    """A scenario file or name that cannot be used; the message says where and why."""


def is_project_id(value: str) -> bool:
    return bool(_PROJECT_ID.match(value))


def is_cluster_id(value: str) -> bool:
    return bool(_CLUSTER_ID.match(value))


# ---- the file format ------------------------------------------------------------


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class StepModel(_Schema):
    task: str = Field(min_length=1)
    wait: float = Field(default=0.0, ge=0)
    queue: float = Field(default=1.0, ge=0)
    run: float = Field(default=10.0, ge=0)
    outcome: Literal["Success", "Failed"] = "Success"
    on_failure: bool | None = Field(default=None, alias="onFailure")  # default: Rollback
    expires_after: float | None = Field(default=None, alias="expiresAfter", ge=0)

    def to_spec(self) -> StepSpec:
        on_failure = self.task == TASK_ROLLBACK if self.on_failure is None else self.on_failure
        expires = self.expires_after
        if expires is None and self.task == TASK_PRECHECK:
            expires = PRECHECK_EXPIRES_AFTER
        return StepSpec(
            task_type=self.task,
            wait=self.wait,
            queue=self.queue,
            run=self.run,
            outcome=self.outcome,
            on_failure=on_failure,
            expires_after=expires,
        )


class LineModel(_Schema):
    start: str
    end: str
    critical: bool = False


class TimelineModel(_Schema):
    steps: list[StepModel] = Field(min_length=1)
    lines: list[LineModel] | None = None
    cancel_after: float | None = Field(default=None, alias="cancelAfter", ge=0)
    end_phase: str | None = Field(default=None, alias="endPhase")

    def to_spec(self, name: str) -> TimelineSpec:
        lines = None
        if self.lines is not None:
            lines = tuple(LineSpec(line.start, line.end, line.critical) for line in self.lines)
        try:
            return TimelineSpec(
                name=name,
                steps=tuple(step.to_spec() for step in self.steps),
                lines=lines,
                cancel_after=self.cancel_after,
                end_phase=self.end_phase,
            )
        except ValueError as exc:
            raise ScenarioError(str(exc)) from None


class CredentialModel(_Schema):
    project_id: str = Field(alias="projectId", pattern=PROJECT_ID_PATTERN)
    access_key: str | None = Field(default=None, alias="accessKey", min_length=1)
    secret_key: str | None = Field(default=None, alias="secretKey", min_length=1)
    security_token: str | None = Field(default=None, alias="securityToken", min_length=1)
    tokens: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _complete(self) -> CredentialModel:
        if (self.access_key is None) != (self.secret_key is None):
            raise ValueError("accessKey and secretKey go together")
        if self.access_key is None and not self.tokens:
            raise ValueError("give accessKey and secretKey, or tokens")
        return self


class WorkflowModel(_Schema):
    timeline: str | TimelineModel = DEFAULT_CREATE_TIMELINE
    target_version: str = Field(default=DEFAULT_TARGET_VERSION, alias="targetVersion")
    cluster_version: str | None = Field(default=None, alias="clusterVersion")
    at: float = 0.0
    uid: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class WindowModel(_Schema):
    weekly_period: str = Field(default="Saturday,Sunday", alias="weeklyPeriod")
    start_time: str = Field(default="02:00", alias="startTime")
    duration_hours: int = Field(default=4, alias="durationHours", ge=0)
    scope: str = "patch"


class PlanModel(_Schema):
    target_version: str = Field(alias="targetVersion")
    not_before: float = Field(alias="notBefore")
    not_after: float | None = Field(default=None, alias="notAfter")
    not_before_deadline: float | None = Field(default=None, alias="notBeforeDeadline")
    postponed_at: float | None = Field(default=None, alias="postponedAt")
    postponed_to: float | None = Field(default=None, alias="postponedTo")
    timeline: str | TimelineModel = DEFAULT_CREATE_TIMELINE
    uid: str | None = None

    @model_validator(mode="after")
    def _postponed(self) -> PlanModel:
        if (self.postponed_at is None) != (self.postponed_to is None):
            raise ValueError("postponedAt and postponedTo go together")
        return self


class LifecycleModel(_Schema):
    maintenance_window: WindowModel | None = Field(
        default_factory=WindowModel, alias="maintenanceWindow"
    )
    plans: list[PlanModel] = Field(default_factory=list)
    plan_items_shape: ItemsShape = Field(default="single", alias="planItemsShape")
    suggested_patch: str | None = Field(default=None, alias="suggestedPatch")
    target_versions: list[str] = Field(
        default_factory=lambda: [DEFAULT_TARGET_VERSION], alias="targetVersions"
    )
    backups: list[float] = Field(default_factory=list)


class ClusterModel(_Schema):
    cluster_id: str = Field(alias="clusterId", pattern=CLUSTER_ID_PATTERN)
    project_id: str | None = Field(default=None, alias="projectId", pattern=PROJECT_ID_PATTERN)
    version: str = DEFAULT_CLUSTER_VERSION
    create_timeline: str | TimelineModel = Field(
        default=DEFAULT_CREATE_TIMELINE, alias="createTimeline"
    )
    items_shape: ItemsShape | None = Field(default=None, alias="itemsShape")
    error_style: ErrorStyle | None = Field(default=None, alias="errorStyle")
    timestamp_format: TimestampFormat | None = Field(default=None, alias="timestampFormat")
    workflows: list[WorkflowModel] = Field(default_factory=list)
    lifecycle: LifecycleModel = Field(default_factory=LifecycleModel)


class ScenarioModel(_Schema):
    description: str = ""
    credentials: list[CredentialModel] = Field(default_factory=list)
    timelines: dict[str, TimelineModel] = Field(default_factory=dict)
    clusters: list[ClusterModel] = Field(default_factory=list)


# ---- what the simulator uses ------------------------------------------------------


@dataclass(frozen=True)
class CredentialSpec:
    project_id: str
    access_key: str | None = None
    secret_key: str | None = None
    security_token: str | None = None
    tokens: tuple[str, ...] = ()


DEMO_CREDENTIALS = (
    CredentialSpec(
        project_id=DEMO_PROJECT_ID,
        access_key=DEMO_ACCESS_KEY,
        secret_key=DEMO_SECRET_KEY,
        tokens=(DEMO_TOKEN,),
    ),
)


@dataclass(frozen=True)
class WorkflowSeed:
    timeline: TimelineSpec
    target_version: str
    cluster_version: str | None
    at: float  # scenario seconds from the simulator's start
    uid: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class WindowSeed:
    weekly_period: str = "Saturday,Sunday"
    start_time: str = "02:00"
    duration_hours: int = 4
    scope: str = "patch"


@dataclass(frozen=True)
class PlanSeed:
    """An automatic upgrade plan; times in scenario seconds from the start. At its
    (last) `notBefore` it runs: a workflow of `timeline` starts then."""

    target_version: str
    not_before: float
    timeline: TimelineSpec
    not_after: float | None = None
    not_before_deadline: float | None = None
    postponed_at: float | None = None
    postponed_to: float | None = None
    uid: str | None = None


@dataclass(frozen=True)
class LifecycleSeed:
    """What the calls around an upgrade show: window, plans, versions, backups."""

    maintenance_window: WindowSeed | None = WindowSeed()
    plans: tuple[PlanSeed, ...] = ()
    plan_items_shape: ItemsShape = "single"
    suggested_patch: str | None = None  # None: the patch the cluster runs
    target_versions: tuple[str, ...] = (DEFAULT_TARGET_VERSION,)
    backups: tuple[float, ...] = ()  # manual backups, completed at these times


@dataclass(frozen=True)
class ClusterSeed:
    cluster_id: str
    project_id: str | None
    version: str
    create_timeline: TimelineSpec
    workflows: tuple[WorkflowSeed, ...] = ()
    items_shape: ItemsShape | None = None
    error_style: ErrorStyle | None = None
    timestamp_format: TimestampFormat | None = None
    lifecycle: LifecycleSeed = LifecycleSeed()


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str = ""
    credentials: tuple[CredentialSpec, ...] = ()
    timelines: dict[str, TimelineSpec] = field(default_factory=dict)
    clusters: tuple[ClusterSeed, ...] = ()


def _builtin_dir() -> Any:
    return resources.files("cce_upgrade_watch.simulator").joinpath("scenarios")


def builtin_scenario_names() -> list[str]:
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in _builtin_dir().iterdir()
        if entry.name.endswith(".yaml")
    )


def _validate(data: Any, source: str) -> ScenarioModel:
    if data is None:
        data = {}
    try:
        return ScenarioModel.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(top)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise ScenarioError(f"scenario {source}: {problems}") from None


@cache
def _builtin_model(name: str) -> ScenarioModel:
    text = _builtin_dir().joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    return _validate(yaml.safe_load(text), f"{name} (built-in)")


@cache
def builtin_timelines() -> dict[str, TimelineSpec]:
    """Every timeline the built-in scenarios define, by name."""
    timelines: dict[str, TimelineSpec] = {}
    for name in builtin_scenario_names():
        for timeline_name, model in _builtin_model(name).timelines.items():
            if timeline_name in timelines:
                raise ScenarioError(f"built-in timeline {timeline_name!r} is defined twice")
            timelines[timeline_name] = model.to_spec(timeline_name)
    return timelines


def parse_timeline(data: Any, name: str = "inline") -> TimelineSpec:
    """A timeline given inline (control API, scenario), validated."""
    try:
        return TimelineModel.model_validate(data).to_spec(name)
    except ValidationError as exc:
        raise ScenarioError(f"timeline {name}: {exc.errors()[0]['msg']}") from None


def _resolve(
    reference: str | TimelineModel, own: dict[str, TimelineSpec], context: str
) -> TimelineSpec:
    if isinstance(reference, TimelineModel):
        return reference.to_spec(f"{context}-inline")
    known = own.get(reference) or builtin_timelines().get(reference)
    if known is None:
        choices = sorted({*own, *builtin_timelines()})
        raise ScenarioError(f"{context}: unknown timeline {reference!r}; known: {choices}")
    return known


def _lifecycle(model: LifecycleModel, own: dict[str, TimelineSpec], context: str) -> LifecycleSeed:
    window = model.maintenance_window
    return LifecycleSeed(
        maintenance_window=None
        if window is None
        else WindowSeed(
            window.weekly_period, window.start_time, window.duration_hours, window.scope
        ),
        plans=tuple(
            PlanSeed(
                target_version=plan.target_version,
                not_before=plan.not_before,
                timeline=_resolve(plan.timeline, own, context),
                not_after=plan.not_after,
                not_before_deadline=plan.not_before_deadline,
                postponed_at=plan.postponed_at,
                postponed_to=plan.postponed_to,
                uid=plan.uid,
            )
            for plan in model.plans
        ),
        plan_items_shape=model.plan_items_shape,
        suggested_patch=model.suggested_patch,
        target_versions=tuple(model.target_versions),
        backups=tuple(model.backups),
    )


def _build(model: ScenarioModel, name: str) -> Scenario:
    own = {key: value.to_spec(key) for key, value in model.timelines.items()}
    clusters = []
    seen: set[str] = set()
    for cluster in model.clusters:
        if cluster.cluster_id in seen:
            raise ScenarioError(f"scenario {name}: cluster {cluster.cluster_id} appears twice")
        seen.add(cluster.cluster_id)
        context = f"scenario {name}, cluster {cluster.cluster_id}"
        workflows = tuple(
            WorkflowSeed(
                timeline=_resolve(workflow.timeline, own, context),
                target_version=workflow.target_version,
                cluster_version=workflow.cluster_version,
                at=workflow.at,
                uid=workflow.uid,
                labels=dict(workflow.labels),
                annotations=dict(workflow.annotations),
            )
            for workflow in cluster.workflows
        )
        clusters.append(
            ClusterSeed(
                cluster_id=cluster.cluster_id,
                project_id=cluster.project_id,
                version=cluster.version,
                create_timeline=_resolve(cluster.create_timeline, own, context),
                workflows=workflows,
                items_shape=cluster.items_shape,
                error_style=cluster.error_style,
                timestamp_format=cluster.timestamp_format,
                lifecycle=_lifecycle(cluster.lifecycle, own, context),
            )
        )
    credentials = tuple(
        CredentialSpec(
            project_id=item.project_id,
            access_key=item.access_key,
            secret_key=item.secret_key,
            security_token=item.security_token,
            tokens=tuple(item.tokens),
        )
        for item in model.credentials
    )
    return Scenario(
        name=name,
        description=model.description,
        credentials=credentials,
        timelines=own,
        clusters=tuple(clusters),
    )


def scenario_from_data(data: Any, name: str = "inline") -> Scenario:
    """A scenario from already-decoded YAML or JSON."""
    return _build(_validate(data, name), name)


def load_scenario(reference: str | Path) -> Scenario:
    """A built-in scenario by name, or a YAML/JSON file by path."""
    text_reference = str(reference)
    if text_reference in builtin_scenario_names():
        return _build(_builtin_model(text_reference), text_reference)
    path = Path(reference)
    if not path.is_file():
        raise ScenarioError(
            f"no built-in scenario and no file named {text_reference!r}; "
            f"built-in scenarios: {', '.join(builtin_scenario_names())}"
        )
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc}") from None
    return scenario_from_data(data, str(path))


def load_credentials_file(path: str | Path) -> tuple[CredentialSpec, ...]:
    """A YAML/JSON list of credentials in the scenario's `credentials` format."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ScenarioError(f"cannot read credentials file {path}: {exc}") from None
    if isinstance(data, dict) and "credentials" in data:
        data = data["credentials"]
    return scenario_from_data({"credentials": data}, str(path)).credentials
