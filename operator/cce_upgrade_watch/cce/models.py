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

Only what the status cannot do without is fatal: the list itself, each
workflow's `metadata.uid`, `status.phase` and `metadata.creationTimestamp` (which
decides which workflow is current). Every other field is informational: a
value that cannot be read (a timestamp in an unknown layout, a non-boolean
`critical`, an object where a string belongs) is left out of that item and
reported in `UpgradeWorkflowList.dropped`, for the operator to log and count.
Labels and annotations are informational too, so junk there is dropped silently.

Everything kept is bounded before anyone stores it: strings at `MAX_STRING`
characters, task and edge lists at `MAX_LIST_ITEMS` (with the number cut kept).
Go's zero time (`0001-01-01 00:00:00 +0000 UTC`, an unset `time.Time`) and any
time before 1970 mean "absent" (see `timestamps.py`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    model_validator,
)

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

#: Bounds on what is copied from the cloud (the CRD's status schema says the same):
#: strings, and the task / edge lists of a workflow; longer ones are cut.
MAX_STRING = 256
MAX_LIST_ITEMS = 64


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
    text = str(value)
    # Bounded before anything stores it (the CRD's maxLength is the same).
    return text if len(text) <= MAX_STRING else text[: MAX_STRING - 3] + "..."


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


# -- informational fields: dropped and reported, never fatal ---------------------

#: Key of the parse context where informational fields that could not be read are
#: counted, by their API name (a Counter).
DROPPED = "dropped"
#: ... and the first reason given for each, for the operator's log.
DROPPED_WHY = "dropped_why"


# Python field names whose API name is not plain camelCase.
_API_NAMES = {"task_id": "taskID", "cluster_id": "clusterID"}


def _api_name(field_name: str | None) -> str:
    name = field_name or "?"
    if name in _API_NAMES:
        return _API_NAMES[name]
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _informational(parse: Callable[[Any], Any]) -> BeforeValidator:
    """A validator that drops (None) what `parse` cannot read, and reports it.

    Only fields the status can do without are informational: a bad task time
    or `critical` must not hide the phase of an upgrade from its watchers.
    """

    def validate(value: Any, info: ValidationInfo) -> Any:
        try:
            return parse(value)
        except ValueError as exc:
            _report(info, _api_name(info.field_name), str(exc))
            return None

    return BeforeValidator(validate)


def _report(info: ValidationInfo, name: str, why: str) -> None:
    context = info.context
    if isinstance(context, dict) and DROPPED in context:
        context[DROPPED][name] += 1
        context[DROPPED_WHY].setdefault(name, why.removeprefix("Value error, ")[:120])


def _informational_object(absent: Callable[[], Any]) -> BeforeValidator:
    """A nested object (`spec`, `startPoint`) that is not an object: dropped
    (`absent()` instead) and reported."""

    def validate(value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, dict):
            return value
        if value not in (None, "", []):
            _report(
                info,
                _api_name(info.field_name),
                f"expected an object, got a JSON {_json_type(value)}",
            )
        return absent()

    return BeforeValidator(validate)


def _bounded_list() -> BeforeValidator:
    """`pointStatuses` / `lineStatuses`: a list, or the doc's single object; entries
    that are not objects are dropped and reported; at most `MAX_LIST_ITEMS` kept
    (the model's `*_omitted` count says how many were cut)."""

    def validate(value: Any, info: ValidationInfo) -> Any:
        name = _api_name(info.field_name)
        value = _list_or_single(value)
        if not isinstance(value, list):
            _report(info, name, f"expected a list, got a JSON {_json_type(value)}")
            return []
        kept = [entry for entry in value if isinstance(entry, dict)]
        if len(kept) != len(value):
            _report(info, name, "an entry is not an object")
        return kept

    return BeforeValidator(validate)


Timestamp = Annotated[datetime | None, BeforeValidator(_timestamp)]
OptionalStr = Annotated[str | None, BeforeValidator(_optional_str)]


InfoStr = Annotated[str | None, _informational(_optional_str)]
InfoTime = Annotated[datetime | None, _informational(_timestamp)]
InfoBool = Annotated[bool | None, _informational(_optional_bool)]


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore", frozen=True)


class PointStatus(_Model):
    task_type: InfoStr = Field(default=None, alias="taskType")
    task_id: InfoStr = Field(default=None, alias="taskID")
    status: InfoStr = None
    start_time_stamp: InfoTime = Field(default=None, alias="startTimeStamp")
    end_time_stamp: InfoTime = Field(default=None, alias="endTimeStamp")
    expire_time_stamp: InfoTime = Field(default=None, alias="expireTimeStamp")


class TaskPoint(_Model):
    task_type: InfoStr = Field(default=None, alias="taskType")


class LineStatus(_Model):
    start_point: Annotated[TaskPoint | None, _informational_object(lambda: None)] = Field(
        default=None, alias="startPoint"
    )
    end_point: Annotated[TaskPoint | None, _informational_object(lambda: None)] = Field(
        default=None, alias="endPoint"
    )
    critical: InfoBool = None


class WorkflowMetadata(_Model):
    uid: OptionalStr = None
    name: InfoStr = None
    labels: Annotated[dict[str, str] | None, BeforeValidator(_string_map)] = None
    annotations: Annotated[dict[str, str] | None, BeforeValidator(_string_map)] = None
    creation_timestamp: Timestamp = Field(default=None, alias="creationTimestamp")
    # Only a tie-breaker of the order (creation time decides), so informational.
    update_timestamp: InfoTime = Field(default=None, alias="updateTimestamp")


class WorkflowSpec(_Model):
    cluster_id: InfoStr = Field(default=None, alias="clusterID")
    cluster_version: InfoStr = Field(default=None, alias="clusterVersion")
    target_version: InfoStr = Field(default=None, alias="targetVersion")


class WorkflowStatus(_Model):
    phase: OptionalStr = None
    point_statuses: Annotated[list[PointStatus], _bounded_list()] = Field(
        default_factory=list, alias="pointStatuses"
    )
    line_statuses: Annotated[list[LineStatus], _bounded_list()] = Field(
        default_factory=list, alias="lineStatuses"
    )
    # How many tasks / edges beyond MAX_LIST_ITEMS were cut (set by the validator
    # below, never read from the answer).
    _point_statuses_omitted: int = PrivateAttr(default=0)
    _line_statuses_omitted: int = PrivateAttr(default=0)

    @model_validator(mode="wrap")
    @classmethod
    def _cut_long_lists(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        omitted = {"pointStatuses": 0, "lineStatuses": 0}
        if isinstance(data, dict):
            data = dict(data)
            for key in omitted:
                value = data.get(key)
                if isinstance(value, list) and len(value) > MAX_LIST_ITEMS:
                    omitted[key] = len(value) - MAX_LIST_ITEMS
                    data[key] = value[:MAX_LIST_ITEMS]
        model = handler(data)
        model._point_statuses_omitted = omitted["pointStatuses"]
        model._line_statuses_omitted = omitted["lineStatuses"]
        return model

    @property
    def point_statuses_omitted(self) -> int:
        return self._point_statuses_omitted

    @property
    def line_statuses_omitted(self) -> int:
        return self._line_statuses_omitted


class UpgradeWorkflow(_Model):
    kind: InfoStr = None
    api_version: InfoStr = Field(default=None, alias="apiVersion")
    metadata: Annotated[WorkflowMetadata, BeforeValidator(_object_or_empty)] = Field(
        default_factory=WorkflowMetadata
    )
    spec: Annotated[WorkflowSpec, _informational_object(dict)] = Field(default_factory=WorkflowSpec)
    status: Annotated[WorkflowStatus, BeforeValidator(_object_or_empty)] = Field(
        default_factory=WorkflowStatus
    )


class UpgradeWorkflowList(_Model):
    kind: OptionalStr = None
    api_version: OptionalStr = Field(default=None, alias="apiVersion")
    items: Annotated[list[UpgradeWorkflow], BeforeValidator(_list_or_single)] = Field(
        default_factory=list
    )
    _dropped: tuple[DroppedField, ...] = PrivateAttr(default=())

    @property
    def dropped(self) -> tuple[DroppedField, ...]:
        """Informational fields that could not be read and were left out."""
        return self._dropped


@dataclass(frozen=True, slots=True)
class DroppedField:
    """An informational field the parser could not read: its API name, how many
    times it was dropped in one answer, and the first reason."""

    field: str
    count: int
    why: str


class Workflows(list[UpgradeWorkflow]):
    """The workflows of one answer, with the informational fields dropped from it."""

    def __init__(
        self, items: Iterable[UpgradeWorkflow] = (), dropped: tuple[DroppedField, ...] = ()
    ) -> None:
        super().__init__(items)
        self.dropped = dropped


def parse_workflow_list(body: bytes | str | Any) -> UpgradeWorkflowList:
    """Parse a list response (raw bytes, text, or already-decoded JSON).

    Returns the model or raises `WorkflowParseError`; nothing else escapes.
    Informational fields that cannot be read are left out and listed in
    `.dropped`; an object that is not even a list envelope (no `items` and no
    `kind`, such as `{}`) is an error, not an empty list.
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
    if "items" not in data and "kind" not in data:
        # `{}` says nothing; reading it as "no workflows" would end an upgrade's
        # mirror on one glitchy answer. (A Go server omits an empty `items` with
        # omitempty, but still sends the List envelope.)
        raise WorkflowParseError("the response has no 'items' (nor a List 'kind')")
    context: dict[str, Any] = {DROPPED: Counter(), DROPPED_WHY: {}}
    try:
        parsed = UpgradeWorkflowList.model_validate(data, context=context)
    except ValidationError as exc:
        raise WorkflowParseError(
            f"the response is not a workflow list: {_first_error(exc)}"
        ) from None
    except RecursionError:
        raise WorkflowParseError("the response is nested too deeply") from None
    parsed._dropped = tuple(
        DroppedField(name, count, context[DROPPED_WHY].get(name, ""))
        for name, count in sorted(context[DROPPED].items())
    )
    return parsed


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {message}{more}"
