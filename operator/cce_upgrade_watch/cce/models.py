"""Pydantic models of the upgrade-workflow list, tolerant of what the API sends.

Every field is optional (the documented example has points with only a
`taskType`); enum-like fields stay plain strings so a value this code has never
seen survives instead of being dropped (`Phase` and `TaskStatus` name the known
ones and compare equal to the raw strings); timestamps accept both layouts the
CCE APIs use (see `timestamps.py`) and become timezone-aware UTC datetimes; an
empty string means absent; `items` may be a list (the SDKs) or a single object
(the doc's example); `critical` may be a bool (the SDKs) or "true"/"false" (the doc).

`parse_workflow_list` is the one entry point for raw bodies. It returns an
`UpgradeWorkflowList` or raises `WorkflowParseError` (a `CceError` and a
`ValueError`, condition reason `InvalidResponse`), whose message names the
first offending field, e.g. ``items.0.metadata.creationTimestamp: unrecognised
timestamp 'yesterday'``. Nothing else escapes it, whatever the input: invalid
UTF-8, deep nesting, huge numbers, a JSON array... (a property test checks that).
Labels and annotations are informational, so junk there is dropped, not fatal.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from cce_upgrade_watch.cce.errors import WorkflowParseError
from cce_upgrade_watch.cce.timestamps import parse_timestamp


class Phase(StrEnum):
    """Known workflow phases; the API may send others, kept as raw strings."""

    INIT = "Init"
    RUNNING = "Running"
    PENDING = "Pending"  # a task failed
    SUCCESS = "Success"
    CANCEL = "Cancel"


class TaskStatus(StrEnum):
    """Known task ("point") statuses."""

    INIT = "Init"
    QUEUING = "Queuing"
    RUNNING = "Running"
    SUCCESS = "Success"
    FAILED = "Failed"


ACTIVE_PHASES = frozenset({Phase.INIT, Phase.RUNNING})


def _timestamp(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("a timestamp must be a string")
    return parse_timestamp(value)


def _optional_str(value: Any) -> str | None:
    # Absent and empty mean the same thing on this API.
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"expected a string, got a JSON {_json_type(value)}")
    return str(value)


def _optional_bool(value: Any) -> bool | None:
    # The doc says String, the SDKs say bool.
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ValueError(f"expected true or false, got {_preview(value)}")


def _list_or_single(value: Any) -> Any:
    # The doc's example shows a single object where the SDKs have a list; an
    # empty object or a null entry describes nothing and is dropped.
    if value is None or value == {}:
        return []
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [entry for entry in value if entry is not None and entry != {}]
    return value


def _mapping_or_none(value: Any) -> Any:
    return None if value is None or value == "" else value


def _object_or_empty(value: Any) -> Any:
    # metadata/spec/status: null, "" or [] mean "nothing sent".
    return value if value not in (None, "", []) else {}


def _string_map(value: Any) -> dict[str, str] | None:
    # Informational only: keep the string-like entries, drop the rest.
    if not isinstance(value, dict):
        return None
    kept = {
        str(key): str(val)
        for key, val in value.items()
        if isinstance(val, str | int | float) and not isinstance(val, bool)
    }
    return kept or None


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", bool: "boolean", str: "string", type(None): "null"}
    return names.get(type(value), "number")


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


Timestamp = Annotated[datetime | None, BeforeValidator(_timestamp)]
OptionalStr = Annotated[str | None, BeforeValidator(_optional_str)]
OptionalBool = Annotated[bool | None, BeforeValidator(_optional_bool)]


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class PointStatus(_Model):
    task_type: OptionalStr = Field(default=None, alias="taskType")
    task_id: OptionalStr = Field(default=None, alias="taskID")
    status: OptionalStr = None
    start_time_stamp: Timestamp = Field(default=None, alias="startTimeStamp")
    end_time_stamp: Timestamp = Field(default=None, alias="endTimeStamp")
    expire_time_stamp: Timestamp = Field(default=None, alias="expireTimeStamp")


class TaskPoint(_Model):
    task_type: OptionalStr = Field(default=None, alias="taskType")


class LineStatus(_Model):
    start_point: Annotated[TaskPoint | None, BeforeValidator(_mapping_or_none)] = Field(
        default=None, alias="startPoint"
    )
    end_point: Annotated[TaskPoint | None, BeforeValidator(_mapping_or_none)] = Field(
        default=None, alias="endPoint"
    )
    critical: OptionalBool = None


class WorkflowMetadata(_Model):
    uid: OptionalStr = None
    name: OptionalStr = None
    labels: Annotated[dict[str, str] | None, BeforeValidator(_string_map)] = None
    annotations: Annotated[dict[str, str] | None, BeforeValidator(_string_map)] = None
    creation_timestamp: Timestamp = Field(default=None, alias="creationTimestamp")
    update_timestamp: Timestamp = Field(default=None, alias="updateTimestamp")


class WorkflowSpec(_Model):
    cluster_id: OptionalStr = Field(default=None, alias="clusterID")
    cluster_version: OptionalStr = Field(default=None, alias="clusterVersion")
    target_version: OptionalStr = Field(default=None, alias="targetVersion")


class WorkflowStatus(_Model):
    phase: OptionalStr = None
    point_statuses: Annotated[list[PointStatus], BeforeValidator(_list_or_single)] = Field(
        default_factory=list, alias="pointStatuses"
    )
    line_statuses: Annotated[list[LineStatus], BeforeValidator(_list_or_single)] = Field(
        default_factory=list, alias="lineStatuses"
    )


class UpgradeWorkflow(_Model):
    kind: OptionalStr = None
    api_version: OptionalStr = Field(default=None, alias="apiVersion")
    metadata: Annotated[WorkflowMetadata, BeforeValidator(_object_or_empty)] = Field(
        default_factory=WorkflowMetadata
    )
    spec: Annotated[WorkflowSpec, BeforeValidator(_object_or_empty)] = Field(
        default_factory=WorkflowSpec
    )
    status: Annotated[WorkflowStatus, BeforeValidator(_object_or_empty)] = Field(
        default_factory=WorkflowStatus
    )


class UpgradeWorkflowList(_Model):
    kind: OptionalStr = None
    api_version: OptionalStr = Field(default=None, alias="apiVersion")
    items: Annotated[list[UpgradeWorkflow], BeforeValidator(_list_or_single)] = Field(
        default_factory=list
    )


def parse_workflow_list(body: bytes | str | Any) -> UpgradeWorkflowList:
    """Parse a list response (raw bytes, text, or already-decoded JSON).

    Returns the model or raises `WorkflowParseError`; nothing else escapes.
    """
    try:
        data = json.loads(body) if isinstance(body, bytes | bytearray | str) else body
    except (ValueError, RecursionError) as exc:
        # UnicodeDecodeError and the int-digits limit are ValueErrors too.
        raise WorkflowParseError(f"the response is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise WorkflowParseError(
            f"the response is a JSON {_json_type(data)}, expected an object with 'items'"
        )
    try:
        return UpgradeWorkflowList.model_validate(data)
    except ValidationError as exc:
        raise WorkflowParseError(
            f"the response is not a workflow list: {_first_error(exc)}"
        ) from None
    except RecursionError:
        raise WorkflowParseError("the response is nested too deeply") from None


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {message}{more}"
