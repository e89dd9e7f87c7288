"""The four status conditions, in `metav1.Condition` shape, read the kstatus way.

kstatus (Flux, Argo CD, cli-utils, `kubectl wait`) looks at `observedGeneration`,
then `Reconciling=True` (InProgress), then `Stalled=True` (Failed), and people
gate on `Ready`. So:

- `Synced`: did the last poll work.
- `Reconciling`: an upgrade is being executed (phase Running, or a task Queuing
  or Running). Not Init: the API says "Init: no task is running", and a workflow
  can sit in Init for days, which would keep `kubectl wait --for=condition=Ready`
  and every kstatus gate waiting. Forced False while polling needs a person, so
  kstatus reports Failed, not InProgress forever.
- `Stalled`: a task failed (phase Pending, of the current workflow or of any
  other one in the mirrored list), or polling cannot recover by itself.
- `Ready`: Synced, not Reconciling, not Stalled.

All four are always present, in a fixed order, so the same facts always give
the same list. The lifecycle conditions (`PreCheckPassed`, `UpgradeScheduled`,
`UpToDate`, derived in `lifecycle_conditions.py`) follow them; kstatus reads
none of those, and nothing about them changes these four.
`lastTransitionTime` moves only when a condition's status flips.
Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from cce_upgrade_watch.cce.models import Phase

__all__ = [
    "CONDITION_ORDER",
    "NEEDS_A_PERSON",
    "ConditionState",
    "ConditionType",
    "FailureReason",
    "Reason",
    "WorkflowFacts",
    "derive_conditions",
    "find_condition",
    "render_conditions",
]


class ConditionType(StrEnum):
    READY = "Ready"
    SYNCED = "Synced"
    RECONCILING = "Reconciling"
    STALLED = "Stalled"
    # The lifecycle conditions (lifecycle_conditions.py), after the four.
    PRECHECK_PASSED = "PreCheckPassed"
    UPGRADE_SCHEDULED = "UpgradeScheduled"
    UP_TO_DATE = "UpToDate"


#: The order of `status.conditions`; fixed so equal facts give equal lists.
CONDITION_ORDER = (
    ConditionType.READY,
    ConditionType.SYNCED,
    ConditionType.RECONCILING,
    ConditionType.STALLED,
)


class FailureReason(StrEnum):
    """Why a poll failed: the `Synced=False` reasons of the design."""

    CREDENTIALS_NOT_FOUND = "CredentialsNotFound"
    CREDENTIALS_INVALID = "CredentialsInvalid"
    FORBIDDEN = "Forbidden"
    CLUSTER_NOT_FOUND = "ClusterNotFound"
    THROTTLED = "Throttled"
    API_UNAVAILABLE = "ApiUnavailable"
    INVALID_RESPONSE = "InvalidResponse"
    #: The endpoint cannot serve this API (unusable, or the gateway has not published it).
    INVALID_ENDPOINT = "InvalidEndpoint"
    #: The operator's clock is off (X-Sdk-Date out of range): retried, fixed by NTP.
    CLOCK_SKEW = "ClockSkew"
    #: Temporary credentials could not be obtained (STS, IAM, metadata, TokenRequest):
    #: retried at the next poll.
    IDENTITY_EXCHANGE_FAILED = "IdentityExchangeFailed"
    #: `spec.identity.ambient` in a namespace the admin has not allowed.
    IDENTITY_NOT_ALLOWED = "IdentityNotAllowed"


#: Failures that retrying cannot fix: someone must change a Secret, a policy or
#: the spec. Besides the design's four: the CCE client's `InvalidEndpoint` (an
#: unusable endpoint, or one where the API gateway has not published the API: a
#: wrong region), `EndpointNotAllowed` (a host the operator's admin has not
#: allowed), `RequestRejected` (another 4xx) and `InvalidSpec` (a spec
#: the operator cannot use, possible only with an outdated CRD). `ClockSkew` is
#: not here: the operator's clock gets fixed (NTP) without touching any object.
NEEDS_A_PERSON = frozenset(
    {
        FailureReason.CREDENTIALS_NOT_FOUND,
        FailureReason.CREDENTIALS_INVALID,
        FailureReason.FORBIDDEN,
        FailureReason.CLUSTER_NOT_FOUND,
        FailureReason.INVALID_ENDPOINT,
        FailureReason.IDENTITY_NOT_ALLOWED,
        "EndpointNotAllowed",
        "RequestRejected",
        "InvalidSpec",
    }
)


class Reason(StrEnum):
    """Condition reasons other than the poll failure reasons."""

    POLL_SUCCEEDED = "PollSucceeded"
    UPGRADE_RUNNING = "UpgradeRunning"
    UPGRADE_NOT_RUNNING = "UpgradeNotRunning"
    UPGRADE_SUCCEEDED = "UpgradeSucceeded"
    UPGRADE_CANCELLED = "UpgradeCancelled"
    UPGRADE_NOT_STARTED = "UpgradeNotStarted"  # Init: no task has started
    UPGRADE_IDLE = "UpgradeIdle"  # a phase this code does not know, or none
    NO_UPGRADE = "NoUpgrade"
    TASK_FAILED = "TaskFailed"
    NOT_STALLED = "NotStalled"


@dataclass(frozen=True, slots=True)
class WorkflowFacts:
    """What the conditions need to know about the mirrored (current) workflow."""

    present: bool
    phase: str | None = None
    cluster_version: str | None = None
    target_version: str | None = None
    failed_tasks: tuple[str, ...] = ()
    #: A task of the current workflow is Queuing or Running.
    task_in_progress: bool = False
    #: Other mirrored workflows (history) in phase Pending, described for a message.
    pending_elsewhere: tuple[str, ...] = ()

    def describe(self) -> str:
        versions = f"{self.cluster_version or '?'} -> {self.target_version or '?'}"
        return f"Upgrade {versions}"


@dataclass(frozen=True, slots=True)
class ConditionState:
    """A condition before it gets its timestamps and generation; `status` None
    is "Unknown" (only the lifecycle conditions use it)."""

    type: ConditionType
    status: bool | None
    reason: str
    message: str


def derive_conditions(
    workflow: WorkflowFacts, failure_reason: str | None, failure_message: str = ""
) -> list[ConditionState]:
    """The four conditions for these facts; `failure_reason` None means the poll worked."""
    if failure_reason is None:
        synced = ConditionState(
            ConditionType.SYNCED,
            True,
            Reason.POLL_SUCCEEDED,
            "The last poll of the CCE API succeeded",
        )
    else:
        synced = ConditionState(ConditionType.SYNCED, False, failure_reason, failure_message)
    needs_a_person = failure_reason is not None and failure_reason in NEEDS_A_PERSON

    reconciling = _reconciling(workflow, synced, needs_a_person)
    stalled = _stalled(workflow, synced, needs_a_person)
    if stalled.status and reconciling.status:
        # kstatus reads Reconciling first: both True would hide Failed behind
        # InProgress, and a stuck workflow needs a person whatever else runs.
        reconciling = ConditionState(
            ConditionType.RECONCILING,
            False,
            stalled.reason,
            "Cannot complete while something is stuck: " + stalled.message,
        )
    ready = _ready(workflow, synced, reconciling, stalled)
    return [ready, synced, reconciling, stalled]


def _reconciling(
    workflow: WorkflowFacts, synced: ConditionState, needs_a_person: bool
) -> ConditionState:
    kind = ConditionType.RECONCILING
    if needs_a_person:
        return ConditionState(
            kind,
            False,
            synced.reason,
            "Cannot follow the upgrade until polling works again: " + synced.message,
        )
    if not workflow.present:
        return ConditionState(kind, False, Reason.NO_UPGRADE, "No upgrade workflow is known")
    if workflow.phase == Phase.RUNNING or workflow.task_in_progress:
        return ConditionState(
            kind,
            True,
            Reason.UPGRADE_RUNNING,
            f"{workflow.describe()} is in progress (phase {workflow.phase or 'unknown'})",
        )
    if workflow.phase == Phase.INIT:
        return ConditionState(
            kind,
            False,
            Reason.UPGRADE_NOT_STARTED,
            f"{workflow.describe()} has not started (phase Init: no task is running)",
        )
    return ConditionState(
        kind,
        False,
        Reason.UPGRADE_NOT_RUNNING,
        f"{workflow.describe()} is not running (phase {workflow.phase or 'unknown'})",
    )


def _stalled(
    workflow: WorkflowFacts, synced: ConditionState, needs_a_person: bool
) -> ConditionState:
    kind = ConditionType.STALLED
    if needs_a_person:
        # The current failure comes first: it is what stops every other update.
        return ConditionState(kind, True, synced.reason, synced.message)
    if workflow.present and workflow.phase == Phase.PENDING:
        failed = ", ".join(workflow.failed_tasks) or "a task"
        return ConditionState(
            kind,
            True,
            Reason.TASK_FAILED,
            f"{workflow.describe()} is stuck (phase Pending): {failed} failed",
        )
    if workflow.pending_elsewhere:
        return ConditionState(
            kind,
            True,
            Reason.TASK_FAILED,
            f"{', '.join(workflow.pending_elsewhere)} is stuck (phase Pending): a task failed",
        )
    return ConditionState(kind, False, Reason.NOT_STALLED, "Nothing needs a person")


def _ready(
    workflow: WorkflowFacts,
    synced: ConditionState,
    reconciling: ConditionState,
    stalled: ConditionState,
) -> ConditionState:
    kind = ConditionType.READY
    # The most actionable blocker gives the reason: a person first, then polling.
    if stalled.status:
        return ConditionState(kind, False, stalled.reason, stalled.message)
    if not synced.status:
        return ConditionState(kind, False, synced.reason, synced.message)
    if reconciling.status:
        return ConditionState(kind, False, reconciling.reason, reconciling.message)
    if not workflow.present:
        return ConditionState(kind, True, Reason.NO_UPGRADE, "The cluster has no upgrade workflow")
    if workflow.phase == Phase.SUCCESS:
        return ConditionState(
            kind, True, Reason.UPGRADE_SUCCEEDED, f"{workflow.describe()} succeeded"
        )
    if workflow.phase == Phase.CANCEL:
        return ConditionState(
            kind, True, Reason.UPGRADE_CANCELLED, f"{workflow.describe()} was cancelled"
        )
    if workflow.phase == Phase.INIT:
        return ConditionState(kind, True, reconciling.reason, reconciling.message)
    return ConditionState(
        kind,
        True,
        Reason.UPGRADE_IDLE,
        f"{workflow.describe()} is idle (phase {workflow.phase or 'unknown'})",
    )


def find_condition(conditions: Any, condition_type: str) -> Mapping[str, Any] | None:
    """The condition of that type in a stored `status.conditions`, tolerating junk."""
    if not isinstance(conditions, Sequence) or isinstance(conditions, str | bytes):
        return None
    for condition in conditions:
        if isinstance(condition, Mapping) and condition.get("type") == condition_type:
            return condition
    return None


def render_conditions(
    states: Sequence[ConditionState],
    stored_conditions: Any,
    generation: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """`metav1.Condition` dicts; a condition keeps its stored `lastTransitionTime`
    unless its status flipped (or the stored one is unusable)."""
    now_text = format_condition_time(now)
    rendered = []
    for state in states:
        status = "Unknown" if state.status is None else "True" if state.status else "False"
        previous = find_condition(stored_conditions, state.type)
        transition = now_text
        if previous is not None and previous.get("status") == status:
            stored_time = previous.get("lastTransitionTime")
            if isinstance(stored_time, str) and stored_time:
                transition = stored_time
        rendered.append(
            {
                "type": str(state.type),
                "status": status,
                "observedGeneration": generation,
                "lastTransitionTime": transition,
                "reason": str(state.reason),
                "message": state.message,
            }
        )
    return rendered


def format_condition_time(moment: datetime) -> str:
    """RFC 3339 UTC to the second, as `metav1.Time` serialises."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
