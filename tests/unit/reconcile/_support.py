"""Helpers shared by the reconcile tests: a valid spec, workflows in API JSON, a runner."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cce_upgrade_watch.cce.models import parse_workflow_list
from cce_upgrade_watch.events import Event
from cce_upgrade_watch.reconcile import PollFailure, PollOutcome, WorkflowsFetched
from cce_upgrade_watch.spec import WatchSpec, parse_watch_spec

BASE_SPEC: dict[str, Any] = {
    "region": "ap-southeast-1",
    "projectId": "0123456789abcdef0123456789abcdef",
    "clusterId": "b4b9e60f-8aa2-11ee-af09-0255ac10004f",
    "credentialsSecretRef": {"name": "cce-credentials"},
}


def make_spec(**overrides: Any) -> WatchSpec:
    return parse_watch_spec({**BASE_SPEC, **overrides})


def parse_now(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def outcome_from(step: Mapping[str, Any]) -> PollOutcome:
    """A fixture step's poll outcome: `error` {reason, message} or `workflows` (API JSON)."""
    if "error" in step:
        return PollFailure(**step["error"])
    return WorkflowsFetched(parse_workflow_list(step["workflows"]).items)


def as_stored(status: Mapping[str, Any]) -> dict[str, Any]:
    """What the API server hands back after storing `status`: a JSON round trip."""
    return json.loads(json.dumps(status))  # type: ignore[no-any-return]


def event_line(event: Event) -> str:
    return f"{event.type} {event.reason}: {event.message}"
