"""CceUpgradeWatch objects in every state, their status made by the real reconcile core.

The GitOps tests (Argo CD's Lua, kstatus, Flux's CEL) judge what the operator
really writes, not hand-written statuses: each scenario feeds polls through
`cce_upgrade_watch.reconcile.reconcile` exactly as the poll loop does, then
wraps the status in an object as the API server would return it.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from cce_upgrade_watch.cce.models import parse_workflow_list
from cce_upgrade_watch.lifecycle_state import (
    LifecycleAnswers,
    Part,
    PartAnswer,
    PartNotOffered,
    PartOutcome,
)
from cce_upgrade_watch.reconcile import (
    NOTHING_UNCONFIRMED,
    PollFailure,
    PollOutcome,
    WorkflowsFetched,
    acknowledge_generation,
    reconcile,
)
from cce_upgrade_watch.spec import parse_watch_spec
from tests.unit.shipping._support import CRD_FILE

SPEC: dict[str, Any] = {
    "region": "ap-southeast-1",
    "projectId": "0123456789abcdef0123456789abcdef",
    "clusterId": "0b3c4a7e-5f1d-4c8e-9a1b-2c3d4e5f6a7b",
    "credentialsSecretRef": {"name": "cce-credentials"},
}
TASKS = ("PreCheck", "Snapshot", "Cluster", "PostCheck")
START = datetime(2024, 3, 1, 8, 0, 0, tzinfo=UTC)


def workflow(phase: str, *task_statuses: str) -> dict[str, Any]:
    """One upgrade workflow in the CCE API's JSON: tasks in TASKS order."""
    return {
        "kind": "WorkFlowTask",
        "apiVersion": "v3",
        "metadata": {
            "uid": "0f9d6a52-7c1b-4bde-8a43-4b6e2f1c7d20",
            "creationTimestamp": "2024-03-01 08:00:00.120000 +0000 UTC",
            "updateTimestamp": "2024-03-01 08:00:00.120000 +0000 UTC",
        },
        "spec": {
            "clusterID": SPEC["clusterId"],
            "clusterVersion": "v1.28.3-r0",
            "targetVersion": "v1.29.1-r0",
        },
        "status": {
            "phase": phase,
            "pointStatuses": [
                {"taskType": task, "taskID": f"{task.lower()}-0001", "status": status}
                for task, status in zip(TASKS, task_statuses, strict=True)
            ],
            "lineStatuses": [
                {"startPoint": {"taskType": a}, "endPoint": {"taskType": b}, "critical": True}
                for a, b in itertools.pairwise(TASKS)
            ],
        },
    }


def fetched(*workflows: dict[str, Any]) -> WorkflowsFetched:
    return WorkflowsFetched(parse_workflow_list({"items": list(workflows)}).items)


SUCCESS = fetched(workflow("Success", "Success", "Success", "Success", "Success"))
RUNNING = fetched(workflow("Running", "Success", "Running", "Init", "Init"))
INIT = fetched(workflow("Init", "Init", "Init", "Init", "Init"))
PRECHECK_FAILED = fetched(workflow("Pending", "Failed", "Init", "Init", "Init"))
CANCELLED = fetched(workflow("Cancel", "Failed", "Init", "Init", "Init"))
NO_WORKFLOW = fetched()
CREDENTIALS_MISSING = PollFailure(
    "CredentialsNotFound", "Secret 'cce-credentials' not found in namespace 'team-a'"
)
CREDENTIALS_INVALID = PollFailure("CredentialsInvalid", "CCE answered 401: the key was rejected")
FORBIDDEN = PollFailure("Forbidden", "CCE answered 403: the user may not list upgrade workflows")
CLUSTER_NOT_FOUND = PollFailure("ClusterNotFound", "CCE answered 404: no such cluster")
ENDPOINT_NOT_ALLOWED = PollFailure(
    "EndpointNotAllowed", "credentials go only to the allowed endpoint hosts"
)
THROTTLED = PollFailure("Throttled", "CCE answered 429: too many requests")
UNAVAILABLE = PollFailure("ApiUnavailable", "CCE answered 503")


def lifecycle(**parts: PartOutcome) -> LifecycleAnswers:
    return LifecycleAnswers({Part(name): outcome for name, outcome in parts.items()})


def _finding(name: str, level: str, kind: str, message: str) -> dict[str, Any]:
    return {
        "name": name,
        "kind": kind,
        "group": "LimitCheck",
        "level": level,
        "phase": "Failed",
        "message": message,
    }


def _precheck(phase: str, *findings: dict[str, Any]) -> dict[str, Any]:
    """A pre-check section in the shape `cce/lifecycle_views.py` gives it."""
    return {
        "taskID": "precheck-0001",
        "phase": phase,
        "clusterVersion": "v1.28.3-r0",
        "targetVersion": "v1.29.1-r0",
        "expireTime": "2024-03-02T08:00:00Z",
        "fatal": sum(1 for f in findings if f["level"] == "Fatal"),
        "warning": sum(1 for f in findings if f["level"] == "Warning"),
        "info": sum(1 for f in findings if f["level"] == "Info"),
        "findings": list(findings),
    }


def _plan(not_before: str) -> dict[str, Any]:
    return {
        "planID": "plan-0001",
        "clusterVersion": "v1.28.3-r0",
        "targetVersion": "v1.28.3-r1",
        "notBefore": not_before,
        "notAfter": "2024-03-02T06:00:00Z",
        "phase": "Pending",
    }


_WINDOW = {
    "weeklyPeriod": "Saturday,Sunday",
    "startTime": "02:00",
    "durationHours": 4,
    "scope": "patch",
    "nextStart": "2024-03-02T02:00:00Z",
}


def _versions(suggested: str) -> dict[str, Any]:
    return {
        "release": "v1.28.3",
        "patch": "r0",
        "suggestedPatch": suggested,
        "targetVersions": ["v1.28.3-r1", "v1.29.1-r0"],
    }


#: What the lifecycle calls say at its worst short of a failure: a pre-check with
#: fatal findings, an automatic upgrade within the lead time, a patch waiting.
NEWS = lifecycle(
    preCheck=PartAnswer(
        _precheck(
            "Failed",
            _finding("DeprecatedAPICheck", "Fatal", "Exception", "v1beta2 FlowSchema removed"),
            _finding("NodeStatusCheck", "Fatal", "Exception", "the node is NotReady"),
            _finding("AddonCheck", "Warning", "Risk", "coredns is customised"),
        )
    ),
    plans=PartAnswer(_plan("2024-03-01T20:00:00Z")),
    maintenanceWindow=PartAnswer(_WINDOW),
    versions=PartAnswer(_versions("r1")),
    backups=PartAnswer("2024-02-20T08:00:00Z"),
)
#: ... and at its calmest: a clean pre-check, no plan, on the suggested patch.
CALM = lifecycle(
    preCheck=PartAnswer(_precheck("Success")),
    plans=PartAnswer(None),
    maintenanceWindow=PartAnswer(_WINDOW),
    versions=PartAnswer(_versions("r0")),
    backups=PartAnswer("2024-03-01T07:00:00Z"),
)
#: Every lifecycle call refused (403) or not offered (404).
REFUSED = lifecycle(
    **{
        str(part): PartNotOffered(403 if part == Part.PRECHECK else 404, "not for this identity")
        for part in Part
    }
)


@dataclass(frozen=True)
class Scenario:
    name: str
    polls: Sequence[PollOutcome]
    #: What the lifecycle calls said, at every poll (None: none was made).
    lifecycle: LifecycleAnswers | None = None
    generation: int = 1
    #: Bumped after the last poll: a spec change the operator has not seen yet.
    spec_changed_after: bool = False
    suspend: bool = False
    without_status: bool = False

    def object(self) -> dict[str, Any]:
        spec = parse_watch_spec(SPEC)
        status: dict[str, Any] | None = None
        unconfirmed = NOTHING_UNCONFIRMED
        for index, outcome in enumerate(self.polls):
            now = START + timedelta(seconds=30 * index)
            result = reconcile(
                status, spec, self.generation, outcome, now, unconfirmed, lifecycle=self.lifecycle
            )
            status, unconfirmed = result.status, result.unconfirmed
            status = json.loads(json.dumps(status))  # what the API server stores
        generation = self.generation
        raw_spec = dict(SPEC)
        if self.suspend:
            # `suspend: true` is a spec change the operator acknowledges without a poll.
            generation += 1
            raw_spec["suspend"] = True
            status = acknowledge_generation(status, generation)
        if self.spec_changed_after:
            generation += 1
            raw_spec["pollInterval"] = "10m"
        obj: dict[str, Any] = {
            "apiVersion": "cce.upgradewatch.io/v1alpha1",
            "kind": "CceUpgradeWatch",
            "metadata": {"name": "prod", "namespace": "team-a", "generation": generation},
            "spec": raw_spec,
        }
        if self.without_status:
            # What the API server stores for a new object: the CRD's status default.
            obj["status"] = dict(crd_status_default())
        elif status is not None:
            obj["status"] = status
        return obj


SCENARIOS = {
    scenario.name: scenario
    for scenario in (
        Scenario("new, no status yet", (), without_status=True),
        Scenario("no upgrade ever", (NO_WORKFLOW,)),
        Scenario("upgrade queued (Init)", (INIT,)),
        Scenario("upgrade running", (INIT, RUNNING)),
        Scenario("upgrade succeeded", (INIT, RUNNING, SUCCESS)),
        Scenario("upgrade cancelled", (INIT, PRECHECK_FAILED, CANCELLED)),
        Scenario("precheck failed", (INIT, PRECHECK_FAILED)),
        Scenario("credentials missing", (CREDENTIALS_MISSING,)),
        Scenario("credentials missing mid-upgrade", (INIT, RUNNING, CREDENTIALS_MISSING)),
        Scenario("credentials invalid", (SUCCESS, CREDENTIALS_INVALID)),
        Scenario("no permission", (FORBIDDEN,)),
        Scenario("no such cluster", (CLUSTER_NOT_FOUND,)),
        Scenario("endpoint not allowed", (ENDPOINT_NOT_ALLOWED,)),
        # A failure episode opens at the second failed poll in a row.
        Scenario("throttled while idle", (SUCCESS, THROTTLED, THROTTLED)),
        Scenario("throttled mid-upgrade", (INIT, RUNNING, THROTTLED, THROTTLED)),
        Scenario("API unavailable while idle", (SUCCESS, UNAVAILABLE, UNAVAILABLE)),
        Scenario("one dropped answer while idle", (SUCCESS, UNAVAILABLE)),
        Scenario("spec changed, not yet observed", (SUCCESS,), spec_changed_after=True),
        Scenario("suspended", (SUCCESS,), suspend=True),
        Scenario("suspended while stalled", (PRECHECK_FAILED,), suspend=True),
        # The lifecycle conditions beside the four (PreCheckPassed, UpgradeScheduled,
        # UpToDate), as the core sets them from the lifecycle calls' answers.
        Scenario("no upgrade; pre-check failed, upgrade soon, patch waiting", (NO_WORKFLOW,), NEWS),
        Scenario("upgrade queued (Init); pre-check failed, upgrade soon", (INIT,), NEWS),
        Scenario("upgrade running; upgrade soon, patch waiting", (INIT, RUNNING), NEWS),
        Scenario("precheck failed; its findings and a plan", (INIT, PRECHECK_FAILED), NEWS),
        Scenario("upgrade succeeded; all calm", (INIT, RUNNING, SUCCESS), CALM),
        Scenario("no upgrade; lifecycle calls refused", (NO_WORKFLOW,), REFUSED),
        Scenario("throttled while idle; pre-check failed", (SUCCESS, THROTTLED, THROTTLED), NEWS),
    )
}


def crd_status_default() -> dict[str, Any]:
    crd = yaml.safe_load(CRD_FILE.read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    default: dict[str, Any] = schema["properties"]["status"].get("default", {})
    return default


def watch(name: str) -> dict[str, Any]:
    return SCENARIOS[name].object()


def condition(obj: dict[str, Any], condition_type: str) -> dict[str, Any] | None:
    for item in obj.get("status", {}).get("conditions", []):
        if item["type"] == condition_type:
            return dict(item)
    return None
