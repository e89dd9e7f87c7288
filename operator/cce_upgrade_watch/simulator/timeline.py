"""Upgrade-workflow timelines: what a workflow looks like at any moment. Pure.

A `TimelineSpec` is the script (from a scenario): tasks in order, each waiting,
queuing and running for some seconds, then succeeding or failing. `plan_timeline`
turns it into a `Plan`: for every task, the absolute times at which its status
changes. `snapshot(plan, now)` reads the plan at one instant. Events (cancel,
forcing a task or phase) produce a new plan from the event's time on; nothing
is ever mutated and nothing runs in the background, so state is a pure function
of the plan (creation + events) and the clock.

Rules, as the CCE documentation describes the API:
- a task moves Init -> Queuing -> Running -> Success | Failed;
- tasks run one after another; after a failure the remaining tasks stay Init,
  except tasks marked `on_failure` (the Rollback path), which run only then and
  appear in `pointStatuses` only once they start;
- phase: Running while a task is queued or running (or between tasks), Pending
  when a task failed and nothing runs, Success when every shown task
  succeeded, Init before anything starts, Cancel once cancelled (which freezes
  every task where it was).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

# Task ("point") statuses.
TASK_INIT = "Init"
TASK_QUEUING = "Queuing"
TASK_RUNNING = "Running"
TASK_SUCCESS = "Success"
TASK_FAILED = "Failed"
TASK_STATUSES = (TASK_INIT, TASK_QUEUING, TASK_RUNNING, TASK_SUCCESS, TASK_FAILED)
TERMINAL_TASK_STATUSES = frozenset({TASK_SUCCESS, TASK_FAILED})

# Workflow phases.
PHASE_INIT = "Init"
PHASE_RUNNING = "Running"
PHASE_PENDING = "Pending"
PHASE_SUCCESS = "Success"
PHASE_CANCEL = "Cancel"
PHASES = (PHASE_INIT, PHASE_RUNNING, PHASE_PENDING, PHASE_SUCCESS, PHASE_CANCEL)

# Task types the API documents.
TASK_PRECHECK = "PreCheck"
TASK_SNAPSHOT = "Snapshot"
TASK_CLUSTER = "Cluster"
TASK_POSTCHECK = "PostCheck"
TASK_ROLLBACK = "Rollback"


@dataclass(frozen=True, slots=True)
class StepSpec:
    """One task of a timeline; durations are scenario seconds (before time-scale)."""

    task_type: str
    wait: float = 0.0  # stays Init this long after the previous task ended
    queue: float = 1.0  # Queuing
    run: float = 10.0  # Running
    outcome: str = TASK_SUCCESS
    on_failure: bool = False  # the rollback path: runs only after a failure
    expires_after: float | None = None  # expireTimeStamp = end + this (pre-checks)

    def __post_init__(self) -> None:
        if min(self.wait, self.queue, self.run) < 0:
            raise ValueError(f"{self.task_type}: durations cannot be negative")
        if self.outcome not in TERMINAL_TASK_STATUSES:
            raise ValueError(f"{self.task_type}: outcome must be Success or Failed")


@dataclass(frozen=True, slots=True)
class LineSpec:
    """An edge of the task graph (`lineStatuses`)."""

    start: str
    end: str
    critical: bool


@dataclass(frozen=True, slots=True)
class TimelineSpec:
    """The script of one workflow."""

    name: str
    steps: tuple[StepSpec, ...]
    lines: tuple[LineSpec, ...] | None = None  # None: `default_lines(steps)`
    cancel_after: float | None = None  # scenario seconds after creation
    end_phase: str | None = None  # the phase once everything has happened

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError(f"timeline {self.name!r} has no steps")
        types = [step.task_type for step in self.steps]
        if len(set(types)) != len(types):
            raise ValueError(f"timeline {self.name!r} names a task type twice: {types}")

    def effective_lines(self) -> tuple[LineSpec, ...]:
        return self.lines if self.lines is not None else default_lines(self.steps)


def default_lines(steps: Iterable[StepSpec]) -> tuple[LineSpec, ...]:
    """A chain through the main tasks, critical up to Cluster. A rollback hangs off
    Cluster (what it undoes), else off the main task before it; it is never critical
    (cancelling is allowed once the critical path has run, and a rollback is not
    part of that path)."""
    steps = tuple(steps)
    main = [step.task_type for step in steps if not step.on_failure]
    cluster_index = main.index(TASK_CLUSTER) if TASK_CLUSTER in main else -1
    lines = [
        LineSpec(start, end, critical=index + 1 <= cluster_index)
        for index, (start, end) in enumerate(itertools.pairwise(main))
    ]
    for position, step in enumerate(steps):
        if not step.on_failure:
            continue
        before = [s.task_type for s in steps[:position] if not s.on_failure]
        origin = TASK_CLUSTER if TASK_CLUSTER in before else (before[-1] if before else None)
        if origin is not None:
            lines.append(LineSpec(origin, step.task_type, critical=False))
    return tuple(lines)


Transition = tuple[float, str]  # (epoch seconds, status from then on)


@dataclass(frozen=True, slots=True)
class PlannedTask:
    step: StepSpec
    task_id: str
    transitions: tuple[Transition, ...] = ()  # sorted by time

    def status_at(self, now: float) -> str:
        status = TASK_INIT
        for moment, value in self.transitions:
            if moment > now:
                break
            status = value
        return status

    def visible_at(self, now: float) -> bool:
        # Rollback-path tasks exist only once they have started.
        return not self.step.on_failure or (
            bool(self.transitions) and self.transitions[0][0] <= now
        )

    def ends_at(self) -> float | None:
        """When the task reaches its final status, if it ever does."""
        if self.transitions and self.transitions[-1][1] in TERMINAL_TASK_STATUSES:
            return self.transitions[-1][0]
        return None


@dataclass(frozen=True, slots=True)
class Plan:
    """A workflow's whole future, as of its last event."""

    created_at: float
    time_scale: float
    tasks: tuple[PlannedTask, ...]
    lines: tuple[LineSpec, ...]
    end_phase: str | None = None
    phase_overrides: tuple[Transition, ...] = ()  # (from, phase): forced or Cancel

    def last_change(self) -> float:
        moments = [moment for task in self.tasks for moment, _ in task.transitions]
        moments += [moment for moment, _ in self.phase_overrides]
        return max(moments, default=self.created_at)

    def task_index(self, task_type: str) -> int:
        for index, task in enumerate(self.tasks):
            if task.step.task_type == task_type:
                return index
        raise KeyError(task_type)


@dataclass(frozen=True, slots=True)
class PointView:
    task_type: str
    task_id: str | None
    status: str
    started_at: float | None
    ended_at: float | None
    expires_at: float | None


@dataclass(frozen=True, slots=True)
class WorkflowSnapshot:
    phase: str
    points: tuple[PointView, ...]
    lines: tuple[LineSpec, ...]
    updated_at: float
    settled: bool = False  # nothing will change any more by itself


def _scaled(seconds: float, time_scale: float) -> float:
    return seconds / time_scale


def _run_step(step: StepSpec, begin: float, time_scale: float) -> tuple[Transition, ...]:
    queued = begin + _scaled(step.wait, time_scale)
    started = queued + _scaled(step.queue, time_scale)
    finished = started + _scaled(step.run, time_scale)
    return ((queued, TASK_QUEUING), (started, TASK_RUNNING), (finished, step.outcome))


def _schedule_tail(
    tasks: list[PlannedTask], first: int, begin: float, failed: bool, time_scale: float
) -> None:
    """(Re)plan tasks[first:] to run one after another from `begin`."""
    cursor: float | None = begin
    for index in range(first, len(tasks)):
        task = tasks[index]
        if cursor is None or task.step.on_failure != failed:
            tasks[index] = replace(task, transitions=())
            continue
        transitions = _run_step(task.step, cursor, time_scale)
        tasks[index] = replace(task, transitions=transitions)
        cursor = transitions[-1][0]
        failed = failed or task.step.outcome == TASK_FAILED


def plan_timeline(
    spec: TimelineSpec, created_at: float, time_scale: float, task_ids: Iterator[str]
) -> Plan:
    """The plan of a workflow created at `created_at`; `task_ids` names the tasks."""
    if time_scale <= 0:
        raise ValueError("time_scale must be positive")
    tasks = [PlannedTask(step, next(task_ids)) for step in spec.steps]
    _schedule_tail(tasks, 0, created_at, failed=False, time_scale=time_scale)
    plan = Plan(
        created_at=created_at,
        time_scale=time_scale,
        tasks=tuple(tasks),
        lines=spec.effective_lines(),
        end_phase=spec.end_phase,
    )
    if spec.cancel_after is not None:
        plan = cancel(plan, created_at + _scaled(spec.cancel_after, time_scale))
    return plan


def _truncate(task: PlannedTask, at: float, *, inclusive: bool) -> PlannedTask:
    kept = tuple(
        (moment, status)
        for moment, status in task.transitions
        if moment < at or (inclusive and moment == at)
    )
    return replace(task, transitions=kept)


def cancel(plan: Plan, at: float) -> Plan:
    """Cancel at `at`: every task stays where it was, the phase becomes Cancel."""
    return replace(
        plan,
        tasks=tuple(_truncate(task, at, inclusive=True) for task in plan.tasks),
        phase_overrides=(*plan.phase_overrides, (at, PHASE_CANCEL)),
    )


def force_phase(plan: Plan, phase: str, at: float) -> Plan:
    """Report `phase` from `at` on. Cancel also freezes the tasks, as a real cancel."""
    if phase == PHASE_CANCEL:
        return cancel(plan, at)
    return replace(plan, phase_overrides=(*plan.phase_overrides, (at, phase)))


def force_task(plan: Plan, task_type: str, status: str, at: float) -> Plan:
    """Put one task into `status` at `at` and re-plan everything after it.

    Tasks before it that had not finished are taken to have succeeded at `at`
    (forcing Cluster to Running implies the pre-check passed). The forced task
    then follows its script from the new status; `Init` or a status outside the
    documented ones holds it there, and the tasks after it wait. Forcing a task
    drops earlier phase overrides (including a cancel): the workflow is driven
    again.
    """
    index = plan.task_index(task_type)
    tasks = list(plan.tasks)
    for earlier in range(index):
        task = _truncate(tasks[earlier], at, inclusive=True)
        current = task.status_at(at)
        if plan.tasks[earlier].transitions and current not in TERMINAL_TASK_STATUSES:
            extra: tuple[Transition, ...] = ((at, TASK_SUCCESS),)
            if current != TASK_RUNNING:
                extra = ((at, TASK_RUNNING), *extra)
            task = replace(task, transitions=(*task.transitions, *extra))
        tasks[earlier] = task

    target = _truncate(tasks[index], at, inclusive=False)
    before = target.status_at(at)
    step = target.step
    scale = plan.time_scale
    forced: tuple[Transition, ...]
    if status == TASK_QUEUING:
        forced = _run_step(replace(step, wait=0.0), at, scale)
    elif status == TASK_RUNNING:
        forced = ((at, TASK_RUNNING), (at + _scaled(step.run, scale), step.outcome))
    elif status in TERMINAL_TASK_STATUSES:
        forced = ((at, status),) if before == TASK_RUNNING else ((at, TASK_RUNNING), (at, status))
    else:  # Init or an undocumented status: held there
        forced = ((at, status),)
    tasks[index] = replace(target, transitions=(*target.transitions, *forced))

    end = tasks[index].ends_at()
    failed = any(task.status_at(at) == TASK_FAILED for task in tasks[:index]) or (
        end is not None and forced[-1][1] == TASK_FAILED
    )
    if end is None:
        for later in range(index + 1, len(tasks)):
            tasks[later] = replace(tasks[later], transitions=())
    else:
        _schedule_tail(tasks, index + 1, end, failed=failed, time_scale=scale)
    return replace(plan, tasks=tuple(tasks), phase_overrides=())


def _derive_phase(statuses: list[str]) -> str:
    if not statuses:
        return PHASE_INIT  # only rollback-path tasks, none started
    if any(status not in (TASK_INIT, TASK_SUCCESS, TASK_FAILED) for status in statuses):
        return PHASE_RUNNING  # queued, running, or something undocumented in between
    if TASK_FAILED in statuses:
        return PHASE_PENDING
    if all(status == TASK_SUCCESS for status in statuses):
        return PHASE_SUCCESS
    if all(status == TASK_INIT for status in statuses):
        return PHASE_INIT
    # Some tasks done and the next not started yet: between two tasks, or held.
    return PHASE_RUNNING


def snapshot(plan: Plan, now: float) -> WorkflowSnapshot:
    """The workflow as the API shows it at `now`."""
    points: list[PointView] = []
    statuses: list[str] = []
    future_changes = False
    updated_at = plan.created_at
    shown_types: set[str] = set()
    for task in plan.tasks:
        started_at: float | None = None
        status = TASK_INIT
        status_since: float | None = None
        for moment, value in task.transitions:
            if moment > now:
                future_changes = True
                break
            status, status_since = value, moment
            if value == TASK_RUNNING:
                started_at = moment
        if not task.visible_at(now):
            continue
        if status_since is not None and status_since > updated_at:
            updated_at = status_since
        ended_at = status_since if status in TERMINAL_TASK_STATUSES else None
        expires_at = None
        if ended_at is not None and task.step.expires_after is not None:
            expires_at = ended_at + _scaled(task.step.expires_after, plan.time_scale)
        points.append(
            PointView(
                task_type=task.step.task_type,
                task_id=task.task_id if status_since is not None else None,
                status=status,
                started_at=started_at,
                ended_at=ended_at,
                expires_at=expires_at,
            )
        )
        statuses.append(status)
        shown_types.add(task.step.task_type)

    phase: str | None = None
    for moment, value in plan.phase_overrides:
        if moment <= now:
            phase = value
            updated_at = max(updated_at, moment)
        else:
            future_changes = True
    if phase is None:
        if plan.end_phase is not None and not future_changes:
            phase = plan.end_phase
        else:
            phase = _derive_phase(statuses)
    lines = tuple(
        line for line in plan.lines if line.start in shown_types and line.end in shown_types
    )
    return WorkflowSnapshot(
        phase=phase,
        points=tuple(points),
        lines=lines,
        updated_at=updated_at,
        settled=not future_changes,
    )
