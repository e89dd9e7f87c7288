"""The pure reconcile core: (stored status, poll outcome, now) -> (new status, events).

No I/O, no kopf, no Kubernetes client: the poll loop polls, calls `reconcile`,
and when `status_patch(stored, result.status)` is not None creates
`result.events` first, then writes the patch; it keeps `result.unconfirmed` for
the next call and sleeps `next_poll_interval(result.status, spec, unconfirmed)`.

Two properties the handler relies on (given the same `Unconfirmed` memory):

- Same input, same output. The new status holds no per-poll data (no "last
  polled" time, no request id), so reconciling an unchanged world against the
  status it produced last time gives an equal status: `status_patch` is None and
  nothing is written. `lastChangeTime` moves only when the mirrored workflow
  data changes, a condition's `lastTransitionTime` only when its status flips.
- Events come from the difference between stored and new status (see
  `events.py`), never from memory, and each has a deterministic key, so a
  restart neither repeats nor loses one.

A failed poll keeps the mirrored workflow data as stored; only the conditions
(and `observedGeneration`) change.

Some answers are believed only when the next poll says the same; until then the
status stays exactly as stored (no write, no Event) and the poll loop keeps what
it saw in `Unconfirmed`, which goes back in with the next poll (a restart forgets
it, which only costs one more poll):

- one failed poll that a retry may fix (a dropped connection, a 503) after a
  good one: a failure episode (`Synced=False`, `PollFailed`) opens at the second
  in a row; at once for a failure that needs a person, and when no good poll
  of this cluster is stored (a new object, a changed cluster);
- an answer without the workflow that was current while it was active (Init,
  Running, Pending), or an empty one: believed at the second such answer, then
  the status changes and a `WorkflowGone` Event says so.

`status.watched` records which cluster the mirror describes. When the spec
names another one, the mirror is dropped before anything else, so nothing of
the old cluster is ever stamped with the new generation.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeAlias

from cce_upgrade_watch.cce.errors import CceError
from cce_upgrade_watch.cce.models import Phase, TaskStatus, UpgradeWorkflow
from cce_upgrade_watch.cce.ordering import current_first
from cce_upgrade_watch.cce.views import workflow_to_status_dict
from cce_upgrade_watch.conditions import (
    NEEDS_A_PERSON,
    ConditionType,
    FailureReason,
    WorkflowFacts,
    derive_conditions,
    find_condition,
    format_condition_time,
    render_conditions,
)
from cce_upgrade_watch.events import Event, events_between, limit_events, status_fingerprint
from cce_upgrade_watch.lifecycle_conditions import LIFECYCLE_CONDITIONS
from cce_upgrade_watch.lifecycle_events import lifecycle_events
from cce_upgrade_watch.lifecycle_parts import LifecycleAnswers
from cce_upgrade_watch.lifecycle_state import LIFECYCLE_KEYS, reconcile_lifecycle
from cce_upgrade_watch.spec import WatchSpec

__all__ = [
    "NOTHING_UNCONFIRMED",
    "OWNED_STATUS_KEYS",
    "PollFailure",
    "PollOutcome",
    "ReconcileResult",
    "Unconfirmed",
    "WorkflowsFetched",
    "acknowledge_generation",
    "next_poll_interval",
    "reconcile",
    "status_patch",
    "watched_identity",
]

#: The mirror of the current workflow; a failed poll keeps these as stored.
_CURRENT_WORKFLOW_KEYS = (
    "phase",
    "clusterVersion",
    "targetVersion",
    "currentVersion",
    "workflowID",
    "currentTask",
    "progress",
    "pointStatuses",
    "lineStatuses",
    # How many tasks / edges the models cut (cce.models.MAX_LIST_ITEMS), when they did.
    "pointStatusesOmitted",
    "lineStatusesOmitted",
)
_WORKFLOW_KEYS = (*_CURRENT_WORKFLOW_KEYS, "history")

#: Every `.status` key this module writes. Others (kopf's own, say) are left alone.
OWNED_STATUS_KEYS = (
    *_WORKFLOW_KEYS,
    "watched",
    "lastChangeTime",
    "observedGeneration",
    "conditions",
    # The lifecycle parts (lifecycle_state.py).
    *LIFECYCLE_KEYS,
)
#: Phases in which the workflow may move soon: polled at `activePollInterval`,
#: and its vanishing from one answer is not believed before the next says the same.
ACTIVE_PHASES = frozenset({Phase.INIT, Phase.RUNNING, Phase.PENDING})
#: The poll-failure reason for a spec the operator cannot use (an outdated CRD).
INVALID_SPEC = "InvalidSpec"

# metav1.Condition's rule for `reason`.
_CONDITION_REASON = re.compile(r"[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?")
# metav1.Condition allows 32768; the message also lands in an Event, keep it readable.
_MAX_FAILURE_MESSAGE = 900
# How cce.errors.CceApiError renders what changes per request.
_PER_TRY_DETAILS = re.compile(r"\s*(\[request id [^\]]*\]|\(retry after [^)]*\))")


@dataclass(frozen=True, slots=True)
class WorkflowsFetched:
    """The poll worked: every workflow the cluster has (any order, maybe none)."""

    workflows: Sequence[UpgradeWorkflow] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "workflows", tuple(self.workflows))


@dataclass(frozen=True, slots=True)
class PollFailure:
    """The poll failed: a `Synced=False` reason and a message safe to show.

    Keep `message` free of per-try details (request ids, attempt counts): it is
    stored in the status, and a message that differs on every try would make
    every failed poll a status write.
    """

    reason: str
    message: str = ""
    #: Open the failure episode now, not only at the second failed poll in a row
    #: (a failure that will repeat, such as a status the API server refuses).
    at_once: bool = False

    def __post_init__(self) -> None:
        reason = self.reason if isinstance(self.reason, str) else ""
        if not _CONDITION_REASON.fullmatch(reason) or len(reason) > 1024:
            # A reason the API server would refuse must not block the status write.
            reason = FailureReason.API_UNAVAILABLE
        message = " ".join(str(self.message).split())
        if len(message) > _MAX_FAILURE_MESSAGE:
            message = message[: _MAX_FAILURE_MESSAGE - 3] + "..."
        object.__setattr__(self, "reason", str(reason))
        object.__setattr__(self, "message", message or f"Polling failed ({reason})")

    @classmethod
    def from_error(cls, error: CceError) -> PollFailure:
        """The failure a CCE client error stands for: its `reason`, and its message
        without the parts that differ on every try (request id, retry delay)."""
        message = _PER_TRY_DETAILS.sub("", str(error))
        return cls(reason=error.reason, message=message)

    @property
    def needs_a_person(self) -> bool:
        """True when retrying cannot help (credentials, permissions, no such cluster)."""
        return self.reason in NEEDS_A_PERSON


PollOutcome: TypeAlias = WorkflowsFetched | PollFailure


@dataclass(frozen=True, slots=True)
class Unconfirmed:
    """What the last poll said that the status does not show yet.

    The poll loop keeps it between polls and hands it back with the next one.
    """

    #: Failed polls in a row not yet reported (0 or 1).
    failed_polls: int = 0
    #: The active current workflow (its workflowID, "" when it has none) that the
    #: last successful answer lacked.
    missing: str | None = None

    @property
    def pending(self) -> bool:
        """True when the next poll is needed to confirm something: poll it soon."""
        return self.failed_polls > 0 or self.missing is not None


NOTHING_UNCONFIRMED = Unconfirmed()


@dataclass(frozen=True, slots=True)
class ReconcileResult:
    """The status to store (only `OWNED_STATUS_KEYS`), the Events to post first,
    in order, and what to hand to the next poll."""

    status: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    unconfirmed: Unconfirmed = NOTHING_UNCONFIRMED


def watched_identity(spec: WatchSpec) -> dict[str, str]:
    """`status.watched`: which cluster, through which API, the mirror describes."""
    where = {"endpoint": spec.endpoint} if spec.endpoint else {"region": str(spec.region)}
    return {**where, "projectId": spec.project_id, "clusterId": spec.cluster_id}


def reconcile(
    stored_status: Mapping[str, Any] | None,
    spec: WatchSpec,
    generation: int,
    outcome: PollOutcome,
    now: datetime,
    unconfirmed: Unconfirmed = NOTHING_UNCONFIRMED,
    lifecycle: LifecycleAnswers | None = None,
) -> ReconcileResult:
    """Compute the new status and the Events due, from the stored status and a poll.

    `lifecycle`: what the lifecycle calls of this poll said (`lifecycle_state`;
    None: none was made, the stored sections stay). The lifecycle part runs on
    every poll, because some of its transitions are driven by time alone.

    `stored_status` is the object's `.status` as read (kopf's `status`, or None);
    `now` is when the poll finished (naive means UTC); `unconfirmed` is what the
    previous poll's result said (see the module's docstring). Never raises for
    any stored status: junk the API server holds is ignored or replaced.
    """
    original = _plain(stored_status) if isinstance(stored_status, Mapping) else {}
    now = now if now.tzinfo is not None else now.replace(tzinfo=UTC)
    held = {key: original[key] for key in OWNED_STATUS_KEYS if key in original}

    stored = original
    watched: Any = watched_identity(spec)
    if isinstance(outcome, PollFailure) and outcome.reason == INVALID_SPEC:
        watched = original.get("watched")  # no usable spec: nothing to compare with
    elif isinstance(original.get("watched"), dict) and original["watched"] != watched:
        # Another cluster: the stored mirror says nothing about it. The conditions
        # stay, so a failure episode that the spec change ends is closed by an Event.
        stored = {key: value for key, value in original.items() if key not in _MIRROR_KEYS}
        unconfirmed = NOTHING_UNCONFIRMED
    cluster_changed = stored is not original

    observed_history: list[dict[str, Any]] | None = None
    if isinstance(outcome, WorkflowsFetched):
        ordered = current_first(outcome.workflows)
        missing = _missing_active_workflow(stored, ordered)
        if missing is not None and missing != unconfirmed.missing:
            # Maybe a glitch of the API: believed only if the next answer agrees.
            return _held(
                original, held, spec, generation, lifecycle, now, Unconfirmed(missing=missing)
            )
        next_unconfirmed = NOTHING_UNCONFIRMED
        workflow_part = _mirror(ordered[0]) if ordered else {}
        observed_history = [_history_entry(workflow) for workflow in ordered[1:]]
        history = observed_history[: spec.history_limit]
        failure = None
    else:
        synced = find_condition(stored.get("conditions"), ConditionType.SYNCED)
        if (
            synced is not None
            and synced.get("status") == "True"
            and not (
                outcome.at_once
                or outcome.needs_a_person
                or cluster_changed
                or unconfirmed.failed_polls
            )
        ):
            # One failed poll that a retry may fix (a dropped connection) opens no
            # failure episode: only the second in a row does. Without a good poll
            # stored (a new object, another cluster) there is nothing to keep.
            return _held(
                original,
                held,
                spec,
                generation,
                lifecycle,
                now,
                Unconfirmed(failed_polls=1, missing=unconfirmed.missing),
            )
        next_unconfirmed = Unconfirmed(missing=unconfirmed.missing)
        workflow_part = _stored_workflow_part(stored)
        history = _dicts(stored.get("history"))[: spec.history_limit]
        failure = outcome
    if history:
        workflow_part["history"] = history

    status = dict(workflow_part)
    if isinstance(watched, dict):
        status["watched"] = watched
    last_change = _last_change_time(stored, workflow_part, now)
    if last_change is not None:
        status["lastChangeTime"] = last_change
    status["observedGeneration"] = generation
    states = derive_conditions(
        _facts(status),
        failure.reason if failure is not None else None,
        failure.message if failure is not None else "",
    )
    # The lifecycle parts on every poll, with or without answers: some of their
    # transitions come with time alone (an upgrade getting near).
    lifecycle_status = reconcile_lifecycle(stored, spec, lifecycle, now)
    status.update(lifecycle_status.sections)
    states += lifecycle_status.conditions
    status["conditions"] = render_conditions(states, stored.get("conditions"), generation, now)
    base = status_fingerprint(original, OWNED_STATUS_KEYS)
    events = events_between(stored, status, observed_history=observed_history, base=base)
    events += _lifecycle_events(stored, status, base)
    return ReconcileResult(status, limit_events(events), next_unconfirmed)


def _held(
    original: Mapping[str, Any],
    held: Mapping[str, Any],
    spec: WatchSpec,
    generation: int,
    lifecycle: LifecycleAnswers | None,
    now: datetime,
    unconfirmed: Unconfirmed,
) -> ReconcileResult:
    """The stored status, held back until the next poll confirms the workflow
    answer, with only the lifecycle parts updated: their calls are not in
    doubt, and what comes with time (an upgrade getting near) still comes."""
    lifecycle_status = reconcile_lifecycle(held, spec, lifecycle, now)
    status = {key: value for key, value in held.items() if key not in LIFECYCLE_KEYS}
    status.update(lifecycle_status.sections)
    stored_conditions = held.get("conditions")
    kept = [
        condition
        for condition in (stored_conditions if isinstance(stored_conditions, list) else [])
        if not (isinstance(condition, dict) and condition.get("type") in LIFECYCLE_CONDITIONS)
    ]
    stored_generation = held.get("observedGeneration")
    if isinstance(stored_generation, int) and not isinstance(stored_generation, bool):
        generation = stored_generation
    rendered = render_conditions(lifecycle_status.conditions, stored_conditions, generation, now)
    if kept or rendered:
        status["conditions"] = kept + rendered
    if status == held:
        return ReconcileResult(dict(held), [], unconfirmed)
    base = status_fingerprint(original, OWNED_STATUS_KEYS)
    return ReconcileResult(status, limit_events(_lifecycle_events(held, status, base)), unconfirmed)


def _lifecycle_events(stored: Mapping[str, Any], new: Mapping[str, Any], base: str) -> list[Event]:
    return [replace(event, key=f"{base}/{event.key}") for event in lifecycle_events(stored, new)]


def _missing_active_workflow(
    stored: Mapping[str, Any], ordered: Sequence[UpgradeWorkflow]
) -> str | None:
    """The stored current workflow's ID ("" without one) if it was active and this
    answer lacks it (an empty answer lacks everything), else None."""
    if _text(stored.get("phase")) not in ACTIVE_PHASES:
        return None
    workflow_id = _text(stored.get("workflowID"))
    if workflow_id is None:
        return "" if not ordered else None
    if any(workflow.metadata.uid == workflow_id for workflow in ordered):
        return None
    return workflow_id


def status_patch(
    stored_status: Mapping[str, Any] | None, new_status: Mapping[str, Any]
) -> dict[str, Any] | None:
    """A JSON merge patch for `.status` turning stored into new, or None if equal.

    Only `OWNED_STATUS_KEYS` are compared; a key the new status lacks is deleted
    (`None`, as merge patch says), also inside objects. Lists are replaced
    whole, which merge patch does anyway.
    """
    stored = _plain(stored_status) if isinstance(stored_status, Mapping) else {}
    new = _plain(new_status)
    patch: dict[str, Any] = {}
    for key in OWNED_STATUS_KEYS:
        if key in new:
            if key not in stored or stored[key] != new[key]:
                patch[key] = _merge_patch(stored.get(key), new[key])
        elif key in stored:
            patch[key] = None
    return patch or None


def _merge_patch(old: Any, new: Any) -> Any:
    """The JSON merge patch (RFC 7386) turning `old` into `new`: an object that
    lost keys must say so with nulls, or the API server would keep them
    (`status.nextUpgrade` without the plan that was cancelled)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        return new
    patch = {key: None for key in old if key not in new}
    for key, value in new.items():
        if key not in old or old[key] != value:
            patch[key] = _merge_patch(old.get(key), value)
    return patch


def next_poll_interval(
    status: Mapping[str, Any] | None,
    spec: WatchSpec,
    unconfirmed: Unconfirmed = NOTHING_UNCONFIRMED,
) -> timedelta:
    """How long the poll loop sleeps after writing this status.

    `activePollInterval` while the mirrored workflow is Init, Running or Pending,
    so task changes (and the start of an upgrade in Init) show up quickly, while
    an answer waits to be confirmed by the next, and after an `ApiUnavailable`
    failure (a dropped connection, a 5xx, an API server that did not answer for
    the Secret), which a retry soon may fix; `pollInterval` otherwise, and
    whenever polling waits for a person (a fast retry cannot fix a wrong key).
    """
    if unconfirmed.pending:
        return spec.active_poll_interval
    status = status if isinstance(status, Mapping) else {}
    synced = find_condition(status.get("conditions"), ConditionType.SYNCED)
    waits_for_a_person = (
        synced is not None
        and synced.get("status") == "False"
        and synced.get("reason") in NEEDS_A_PERSON
    )
    if waits_for_a_person:
        return spec.poll_interval
    if synced is not None and synced.get("reason") == FailureReason.API_UNAVAILABLE:
        return spec.active_poll_interval
    if status.get("phase") in ACTIVE_PHASES:
        return spec.active_poll_interval
    return spec.poll_interval


def acknowledge_generation(
    stored_status: Mapping[str, Any] | None, generation: int, spec: WatchSpec | None = None
) -> dict[str, Any]:
    """The stored status with `observedGeneration` (its own and the conditions') set.

    For a spec change that is handled without a poll, such as `suspend: true`:
    kstatus readers (Flux, Argo CD) see InProgress until `observedGeneration`
    catches up with `metadata.generation`. Nothing else changes, so no Event is
    due; except that a mirror of another cluster than `spec` names is dropped.
    """
    stored = _plain(stored_status) if isinstance(stored_status, Mapping) else {}
    status = {key: stored[key] for key in OWNED_STATUS_KEYS if key in stored}
    if spec is not None and isinstance(status.get("watched"), dict):
        watched = watched_identity(spec)
        if status["watched"] != watched:
            status = {key: value for key, value in status.items() if key not in _MIRROR_KEYS}
            status["watched"] = watched
            if isinstance(status.get("conditions"), list):
                # What the lifecycle calls said was about the other cluster too.
                status["conditions"] = [
                    condition
                    for condition in status["conditions"]
                    if not (
                        isinstance(condition, dict)
                        and condition.get("type") in LIFECYCLE_CONDITIONS
                    )
                ]
    status["observedGeneration"] = generation
    conditions = status.get("conditions")
    if isinstance(conditions, list):
        status["conditions"] = [
            {**condition, "observedGeneration": generation}
            if isinstance(condition, dict)
            else condition
            for condition in conditions
        ]
    return status


# ---------------------------------------------------------------- the mirror


def _mirror(workflow: UpgradeWorkflow) -> dict[str, Any]:
    """The current workflow in the API's own field names, absent fields omitted."""
    view = workflow_to_status_dict(workflow)
    part = {key: view[key] for key in _MIRRORED_FIELDS if key in view}
    points = [point for point in view.get("pointStatuses", []) if isinstance(point, dict)]
    _put(part, "currentTask", _current_task(points))
    if points:
        succeeded = sum(1 for point in points if point.get("status") == TaskStatus.SUCCESS)
        part["progress"] = f"{succeeded}/{len(points)}"
        part["pointStatuses"] = points
    if view.get("lineStatuses"):
        part["lineStatuses"] = view["lineStatuses"]
    # What the cluster runs now: the target once the upgrade succeeded.
    current_version = (
        part.get("targetVersion") if part.get("phase") == Phase.SUCCESS else None
    ) or part.get("clusterVersion")
    _put(part, "currentVersion", current_version)
    for omitted in ("pointStatusesOmitted", "lineStatusesOmitted"):
        if omitted in view:
            part[omitted] = view[omitted]
    return part


def _history_entry(workflow: UpgradeWorkflow) -> dict[str, Any]:
    view = workflow_to_status_dict(workflow)
    return {key: view[key] for key in _HISTORY_FIELDS if key in view}


_MIRRORED_FIELDS = ("phase", "clusterVersion", "targetVersion", "workflowID")
#: What describes the watched cluster: dropped when the spec names another one.
_MIRROR_KEYS = frozenset({*_WORKFLOW_KEYS, *LIFECYCLE_KEYS, "watched", "lastChangeTime"})
_HISTORY_FIELDS = ("workflowID", "phase", "clusterVersion", "targetVersion", "createdAt")


def _current_task(points: Sequence[Mapping[str, Any]]) -> str | None:
    """The running task, else the queued one, else the failed one."""
    for wanted in (TaskStatus.RUNNING, TaskStatus.QUEUING, TaskStatus.FAILED):
        for point in points:
            name = point.get("taskType") or point.get("taskID")
            if point.get("status") == wanted and name:
                return str(name)
    return None


def _facts(status: Mapping[str, Any]) -> WorkflowFacts:
    present = any(key in status for key in _CURRENT_WORKFLOW_KEYS)
    points = status.get("pointStatuses")
    failed = tuple(
        str(point.get("taskType") or point.get("taskID") or "a task")
        for point in (points if isinstance(points, list) else [])
        if isinstance(point, Mapping) and point.get("status") == TaskStatus.FAILED
    )
    in_progress = any(
        isinstance(point, Mapping)
        and point.get("status") in (TaskStatus.QUEUING, TaskStatus.RUNNING)
        for point in (points if isinstance(points, list) else [])
    )
    pending_elsewhere = tuple(
        f"Upgrade {entry.get('clusterVersion') or '?'} -> {entry.get('targetVersion') or '?'}"
        + (f" (workflow {entry['workflowID']})" if _text(entry.get("workflowID")) else "")
        for entry in _dicts(status.get("history"))
        if entry.get("phase") == Phase.PENDING
    )
    return WorkflowFacts(
        present=present,
        phase=_text(status.get("phase")),
        cluster_version=_text(status.get("clusterVersion")),
        target_version=_text(status.get("targetVersion")),
        failed_tasks=failed,
        task_in_progress=in_progress,
        pending_elsewhere=pending_elsewhere,
    )


def _last_change_time(
    stored: Mapping[str, Any], workflow_part: Mapping[str, Any], now: datetime
) -> str | None:
    """`now` if the mirrored workflow data changed, else the stored time.

    A history that only grew or shrank at its end (a new `historyLimit`) is no
    change of the workflows themselves.
    """
    changed = any(stored.get(key) != workflow_part.get(key) for key in _CURRENT_WORKFLOW_KEYS)
    old_history, new_history = stored.get("history"), workflow_part.get("history", [])
    if isinstance(old_history, list):
        common = min(len(old_history), len(new_history))
        changed = changed or old_history[:common] != new_history[:common]
    stored_time = stored.get("lastChangeTime")
    if not changed and isinstance(stored_time, str) and stored_time:
        return stored_time
    if not changed and not workflow_part:
        return None  # nothing mirrored yet (no workflows): nothing has changed
    return format_condition_time(now)


def _stored_workflow_part(stored: Mapping[str, Any]) -> dict[str, Any]:
    """The stored mirror of the current workflow, minus values of the wrong type
    (which the API server would refuse on the way back)."""
    part: dict[str, Any] = {}
    for key in _CURRENT_WORKFLOW_KEYS:
        value = stored.get(key)
        if key in ("pointStatuses", "lineStatuses"):
            if _dicts(value):
                part[key] = _dicts(value)
        elif key.endswith("Omitted"):
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                part[key] = value
        elif _text(value) is not None:
            part[key] = value
    return part


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _put(target: dict[str, Any], key: str, value: str | None) -> None:
    if value is not None:
        target[key] = value


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _plain(value: Any) -> Any:
    """A deep copy as plain dicts and lists (kopf hands over read-only views).

    Nulls are dropped: in a stored status (and in a merge patch) null means absent.
    """
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items() if item is not None}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value if item is not None]
    return value
